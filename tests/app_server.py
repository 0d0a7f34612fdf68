"""Start the real app (``python app.py``) on a free loopback port for tests (and
bench/bench_e2e.py), and talk to it.

``start_app(tmp)`` gives an :class:`AppServer` whose temp, export and result-cache folders lie in
``tmp`` and which never downloads (``MODELKIT_OFFLINE=1``). ``prelude`` is Python run in the
server process before ``import app; app.launch()``, the way a deployer's own start script would
register extra models first.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
START_TIMEOUT_S = 180  # a start under load on 2 cores (import, page build, launch)

LAUNCHER = """\
import logging, sys
sys.path.insert(0, {root!r})
logging.basicConfig(level=logging.INFO)
{prelude}
import app
app.launch()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AppServer:
    proc: subprocess.Popen
    url: str
    tmp: Path

    @property
    def cache_dir(self) -> Path:
        return self.tmp / "cache"

    @property
    def temp_dir(self) -> Path:
        return self.tmp / "gradio"

    def log(self) -> str:
        return (self.tmp / "app.log").read_text(errors="replace")

    def rss(self) -> int:
        """Resident memory of the server process, in bytes."""
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=20)


def start_app(
    tmp: Path,
    env: dict[str, str] | None = None,
    prelude: str = "",
    start_timeout_s: float = START_TIMEOUT_S,
) -> AppServer:
    """The app on a free loopback port, folders in ``tmp``, offline; returns once it listens."""
    port = free_port()
    (tmp / "private").mkdir(parents=True, exist_ok=True)
    full_env = dict(
        os.environ,
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_SERVER_PORT=str(port),
        GRADIO_TEMP_DIR=str(tmp / "gradio"),
        MODELKIT_CACHE_DIR=str(tmp / "cache"),
        MODELKIT_OFFLINE="1",
        GRADIO_ANALYTICS_ENABLED="False",
        TMPDIR=str(tmp / "private"),  # the app's private export folder lands here
    )
    full_env.update(env or {})
    if prelude:
        command = [sys.executable, "-c", LAUNCHER.format(root=str(ROOT), prelude=prelude)]
    else:
        command = [sys.executable, "app.py"]
    log = open(tmp / "app.log", "w")  # noqa: SIM115 (the child holds it; closed with the process)
    proc = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    server = AppServer(proc, f"http://127.0.0.1:{port}/", tmp)
    deadline = time.monotonic() + start_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the app exited:\n" + server.log()[-3000:])
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"the app did not start in {start_timeout_s} s:\n" + server.log()[-3000:])


def api_args(
    model: str = "efficientnet_lite0",
    pretrained: bool = True,
    in_chans: int | None = None,
    channels: str = "",
    num_classes: int | None = None,
    out_indices: str = "",
    top_k: int = 5,
    scaling: str = "auto",
) -> list:
    """The form of the /predict and /features endpoints, in their order (after the file)."""
    return [model, pretrained, in_chans, channels, num_classes, out_indices, top_k, scaling]


def call(client, name: str, api_name: str = "/predict", **form):
    """``client.predict`` on the asset ``name`` (or a path) with ``api_args(**form)``."""
    from gradio_client import handle_file

    path = Path(name) if Path(name).is_absolute() else ASSETS / name
    return client.predict(handle_file(str(path)), *api_args(**form), api_name=api_name)
