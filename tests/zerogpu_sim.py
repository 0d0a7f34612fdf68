"""Run the app's model handlers the way a ZeroGPU Space does, on this CPU machine, and print what
happened as JSON (tests/test_zerogpu.py runs this in a subprocess: importing ``spaces`` with
SPACES_ZERO_GPU set patches torch for the whole process).

Real: the ``spaces`` package's own decorator, its CUDA emulation in the main process, its
scheduling requests (to the device API below), the forked worker, the pickles both ways, the
worker's allow/release calls. Simulated: the platform's device API (a loopback HTTP server that
grants every request and records the declared durations) and the two steps that need a real GPU
(``spaces.zero.torch.init``, which makes a CUDA context, and ``move``, which copies the
emulated-CUDA tensors to the GPU: here the worker keeps them in CPU memory). In the worker torch
is unpatched, so there the models run on the CPU.

Usage: python tests/zerogpu_sim.py OUT_DIR IMAGE
"""

from __future__ import annotations

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

ROOT = Path(__file__).resolve().parent.parent
DECLARED: list[int] = []  # durationSeconds of every /schedule request


class DeviceApi(BaseHTTPRequestHandler):
    """The ZeroGPU device API, as ``spaces.zero.api.APIClient`` talks to it: grant everything."""

    def do_POST(self):  # noqa: N802 - http.server's name
        url = urlparse(self.path)
        query = parse_qs(url.query)
        body = b""
        if url.path == "/schedule":
            DECLARED.append(int(query["durationSeconds"][0]))
            body = json.dumps(
                {"idle": True, "nvidiaIndex": 0, "nvidiaUUID": "GPU-sim", "allowToken": "sim"}
            ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve() -> str:
    server = HTTPServer(("127.0.0.1", 0), DeviceApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def main(out: Path, image: str) -> dict:
    os.environ.update(
        SPACES_ZERO_GPU="true",
        SPACES_ZERO_DEVICE_API_URL=serve(),
        ZEROGPU_OFFLOAD_DIR=str(out / "offload"),
        GRADIO_TEMP_DIR=str(out / "gradio"),
        MODELKIT_CACHE_DIR=str(out / "cache"),
    )
    sys.path.insert(0, str(ROOT))
    # the app's own import order: gradio, then the page modules (modelkit.app.gpu imports spaces)
    import gradio as gr  # noqa: I001 - the order is the point
    import torch

    from modelkit.app import api, explore, guard

    import spaces
    import spaces.zero.torch as zero_torch
    from spaces.zero.torch import patching

    def move(callback=None):  # spaces' move without the GPU: aliases get their CPU originals
        for fake, original in list(patching.cuda_aliases.items()):
            if original is not None:
                fake.data = original

    zero_torch.init = lambda nvidia_uuid: None
    zero_torch.move = move

    with gr.Blocks():
        guard.status_line()
    report: dict = {"main_pid": os.getpid(), "cuda_emulated": torch.cuda.is_available()}

    form = ("efficientnet_lite0", True, "", None, "", None, "", 5, "auto", "auto", "fp32", "torch")
    out_run = explore.on_run(image, *form)
    report["run"] = {
        "chart": json.loads(out_run[3].to_json())["data"][0],
        "note": out_run[4],
        "last": out_run[-1],
    }
    report["level"] = explore.on_level(1, out_run[-1])[1]  # its level summary
    report["predict"] = api.api_predict(image, "efficientnet_lite0", True, None, "", None, "",
                                        5, "auto")  # fmt: skip
    # a user's mistake raised inside the worker reaches the guard as the same plain message
    report["error_page"] = explore.on_run(None, *form)[guard.status()]
    try:
        api.api_predict(image, "no_such_model", True, None, "", None, "", 5, "auto")
    except gr.Error as exc:
        report["error_api"] = exc.message
    # the main process holds the model, built there on the emulated cuda (CPU memory)
    from modelkit.app import runs
    from modelkit.app.runs import FormRun

    model = runs.cached_model(FormRun.from_dict(out_run[-1]["run"]).settings)
    report["main_cache_device"] = str(next(model.parameters()).device)
    weights = explore.on_weights(out_run[-1])[1]
    report["weights_file"] = weights

    @spaces.GPU(duration=5)
    def where() -> int:
        return os.getpid()

    report["worker_pid"] = where()
    report["declared"] = DECLARED
    return report


if __name__ == "__main__":
    print("ZEROGPU-SIM " + json.dumps(main(Path(sys.argv[1]), sys.argv[2]), default=str))
