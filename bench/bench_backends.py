"""Compiled CPU backends (ONNX Runtime, OpenVINO) against eager torch, and what "auto" picks.

    .venv/bin/python bench/bench_backends.py [--repeats 5] [--models resnet50,...] [--no-e2e]

Table 1: ms per image of torch, each runtime and auto at batch 1 and 16 (224 px, random weights
except efficientnet_lite0, whose real weights ship in a pip package), interleaved round by round
on the same input; ratios to torch and auto against the best. Goals (issue 24):
efficientnet_lite0 <= 0.3x torch, resnet50 <= 0.45x, auto <= 1.0x everywhere.
Table 2: what one graph costs once: export, then each runtime's load/compile + probe, its size.
Table 3 (``end_to_end``): the app's default run on the cat photo, Teach's embedding of 400
images, Batch over 400 JPEG files (through the public functions with backend="auto" or "torch")
and the dense pass of a 512 x 512 scene, auto (warm) against torch.
Graphs go to a temporary folder: every export here is a fresh one.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("MODELKIT_OFFLINE", "1")

from benchtable import Table, print_tables, ratio  # noqa: E402

from modelkit import create_model  # noqa: E402
from modelkit.runtime.backends import available_backends, compiled_forward  # noqa: E402
from modelkit.runtime.backends.choose import time_candidates  # noqa: E402
from modelkit.runtime.backends.names import cpu_flags, versions  # noqa: E402
from modelkit.runtime.backends.store import GraphStore  # noqa: E402

MODELS = [("efficientnet_lite0", True), ("resnet50", False), ("convnext_tiny", False),
          ("vit_b_16", False), ("swin_t", False), ("timm/resnet18", False)]  # fmt: skip
GOALS = {"efficientnet_lite0": 0.3, "resnet50": 0.45}
FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8",
         "amx_bf16")  # fmt: skip


def load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def machine() -> list[str]:
    """The CPU, its instruction sets that matter here, threads, versions."""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        name = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                    if line.startswith("Model name"))  # fmt: skip
    except (OSError, subprocess.CalledProcessError, StopIteration):
        name = platform.processor() or "unknown"
    flags = cpu_flags()
    have = [f for f in FLAGS if f in flags] + sorted(f for f in flags if f.startswith("avx512")
                                                     and f not in FLAGS)  # fmt: skip
    lacks = [f for f in FLAGS if f not in flags]
    return [
        f"CPU: {name}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
        f"instruction sets: {' '.join(have)}; lacks {' '.join(lacks) or 'none'}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()),
    ]


def build(name: str, pretrained: bool, store: GraphStore, example: torch.Tensor):
    """The model and its runners per runtime, with the one-time costs (seconds, MB)."""
    model = create_model(name, pretrained=pretrained)
    runners, costs = {}, {}
    for backend in available_backends():
        t0 = time.perf_counter()
        runners[backend] = compiled_forward(
            model, model_id=name, output="logits", example=example, backend=backend, store=store
        )
        costs[backend] = time.perf_counter() - t0
    folder = next(iter(store.directory.glob("*/model.onnx")), None)
    export = float(store.meta(folder.parent.name).get("export_seconds", 0)) if folder else None
    first = next(iter(costs), None)
    if first is not None and export is not None:  # the first runner paid for the export
        costs[first] -= export
    size = folder.stat().st_size / 2**20 if folder else None
    return model, runners, costs, export, size


def speed(repeats: int, names: list[str], store_dir: Path) -> tuple[Table, Table]:
    backends = available_backends()
    cols = (
        ["model", "batch", "torch ms"] + [f"{b} ms" for b in backends] + ["auto ms", "auto picks"]
    )
    cols += [f"{b}/torch" for b in backends] + ["auto/torch", "auto/best"]
    formats = {c: ".1f" if c.endswith("ms") else ".2f" for c in cols[2:] if c != "auto picks"}
    table = Table(f"ms per image, 224 px, interleaved, median of {repeats}", cols, formats=formats)
    costs = Table("one-time cost per graph (224 px): export, then each runtime's load + probe",
                  ["model", "export s"] + [f"{b} load+probe s" for b in backends] + ["graph MB"],
                  formats={"export s": ".1f", "graph MB": ".0f"}
                  | {f"{b} load+probe s": ".1f" for b in backends})  # fmt: skip
    misses = []
    for name, pretrained in MODELS:
        if names and name not in names:
            continue
        store = GraphStore(store_dir / name.replace("/", "_"))
        example = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
        model, runners, seconds, export, size = build(name, pretrained, store, example)
        for b, r in runners.items():
            if r.backend != b and not r.notes:
                r(example)
        costs.add(name, export, *[seconds[b] for b in backends], size)
        for batch in (1, 16):
            x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(batch))
            auto = compiled_forward(model, model_id=name, output="logits", example=x,
                                    backend="auto", store=store)  # fmt: skip
            with torch.inference_mode():
                auto(x)
                auto.wait(600)  # auto's own timing for this batch size, done before ours
                calls = {"torch": lambda m=model, x=x: m(x), "auto": lambda r=auto, x=x: r(x)}
                calls |= {b: (lambda r=r, x=x: r(x)) for b, r in runners.items()}
                sec = time_candidates(calls, rounds=repeats, budget_s=120)
            ms = {k: v * 1e3 / batch for k, v in sec.items()}
            best = min(ms[k] for k in ms if k != "auto")
            table.add(name, batch, ms["torch"], *[ms[b] for b in backends], ms["auto"],
                      auto.backend, *[ratio(ms[b], ms["torch"]) for b in backends],
                      ratio(ms["auto"], ms["torch"]), ratio(ms["auto"], best))  # fmt: skip
            goal = GOALS.get(name)
            if goal and best / ms["torch"] > goal:
                misses.append(f"{name} at batch {batch}: best {best / ms['torch']:.2f}x > {goal}x")
            if ms["auto"] > ms["torch"]:
                misses.append(f"{name} at batch {batch}: auto {ms['auto'] / ms['torch']:.2f}x")
        for r in runners.values():
            if r.backend == "torch":
                table.notes.append(f"{name}: {'; '.join(r.notes)}")
        del model, runners
    table.notes += [f"goal missed: {m}" for m in misses] or ["every goal of the table met"]
    return table, costs


# --- end to end: auto against torch through the public functions -----------------------------
# ================================================================================================
def end_to_end(repeats: int, count: int = 400) -> Table:
    """The app's default run, Teach's embeddings, Batch and a scene's dense pass, through the
    public functions with ``backend="auto"`` (warm) against ``backend="torch"``."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_batch import make_photos
    from bench_teach import decoded_images

    import modelkit
    from modelkit.images.read import read_image

    table = Table(f"end to end, efficientnet_lite0 (real weights), auto (warm) vs torch, "
                  f"median of {repeats}", ["task", "torch s", "auto s", "auto/torch"],
                  formats={"torch s": ".3f", "auto s": ".3f", "auto/torch": ".2f"})  # fmt: skip
    images = decoded_images(count)
    cat = read_image((ROOT / "assets" / "chelsea.png").read_bytes(), "chelsea.png")
    opts = {"pretrained": True, "use_result_cache": False, "device": "cpu"}

    def app_run(backend: str):  # what the page's first button does: top-5 and every level
        out = modelkit.predict(cat, "efficientnet_lite0", backend=backend, **opts)
        modelkit.features(cat, "efficientnet_lite0", backend=backend, **opts)
        return out

    same = [app_run(b).probabilities for b in ("torch", "auto")]
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_photos(Path(tmp) / "photos", count)
        tasks = {
            "the app's default run (cat photo: predict + feature maps)": app_run,
            f"Teach: embeddings of {count} images": lambda b: modelkit.embeddings(
                images, "efficientnet_lite0", batch_size=32, backend=b, **opts),
            f"Batch: {count} JPEG files": lambda b: modelkit.batch(
                folder, "efficientnet_lite0", batch_size=32, backend=b, **opts),
        }  # fmt: skip
        for task, run in tasks.items():
            for _ in range(2):  # warm: graphs made, auto's timing done
                run("auto")
                _idle()
            times = {"torch": [], "auto": []}
            for i in range(repeats):
                for who in ("torch", "auto") if i % 2 == 0 else ("auto", "torch"):
                    t0 = time.perf_counter()
                    run(who)
                    times[who].append(time.perf_counter() - t0)
            t, a = sorted(times["torch"])[repeats // 2], sorted(times["auto"])[repeats // 2]
            table.add(task, t, a, ratio(a, t))
    table.add(*_scene(repeats))
    gap = np.abs(np.subtract(same[0], app_run("auto").probabilities)).max()
    table.notes.append(f"the app's default run: the same top-5 probabilities on both "
                       f"(max difference {gap:.1e})")  # fmt: skip
    table.notes.append("The scene row is the dense pass only (forward_features of one 512 x 512 "
                       "image, the 'trunk' output), not a whole scene map.")  # fmt: skip
    return table


def _idle() -> None:
    """Wait for every runner's background jobs (compile, timing) in the process."""
    import gc
    import warnings

    from modelkit.runtime.backends import Runner

    with warnings.catch_warnings():  # isinstance on torch's deprecated module attributes warns
        warnings.simplefilter("ignore", FutureWarning)
        runners = [obj for obj in gc.get_objects() if isinstance(obj, Runner)]
    for runner in runners:
        runner.wait(600)


def _scene(repeats: int) -> list:
    model = create_model("efficientnet_lite0", pretrained=True)
    x = torch.randn(1, 3, 512, 512, generator=torch.Generator().manual_seed(0))
    runner = compiled_forward(model, model_id="lite0", output="trunk", example=x, backend="auto")
    with torch.inference_mode():
        runner(x)
        runner.wait(600)
        sec = time_candidates({"torch": lambda: model.forward_features(x),
                               "auto": lambda: runner(x)}, rounds=repeats)  # fmt: skip
    return [
        "scene 512 x 512: dense pass",
        sec["torch"],
        sec["auto"],
        ratio(sec["auto"], sec["torch"]),
    ]


def collect(repeats: int = 5, names: list[str] | None = None, e2e: bool = True,
            threads: int | None = None) -> list[Table]:  # fmt: skip
    if threads:
        torch.set_num_threads(threads)
        os.environ["MODELKIT_CPU_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MODELKIT_CACHE_DIR"] = str(Path(tmp) / "cache")  # fresh graphs, no results
        start = load()
        tables = list(speed(repeats, names or [], Path(tmp)))
        if e2e:
            tables.append(end_to_end(max(3, repeats // 2)))
    tables[0].notes += machine() + [f"load average (1, 5, 15 min): {start} at the start, "
                                    f"{load()} at the end"]  # fmt: skip
    return tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", default="", help="comma-separated subset of the models")
    parser.add_argument("--no-e2e", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch and runtime threads")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    args = parser.parse_args()
    names = [n for n in args.models.split(",") if n]
    tables = collect(args.repeats, names, not args.no_e2e, args.threads)
    if args.markdown:
        print("\n".join(t.to_markdown() for t in tables))
    else:
        print_tables(tables)


if __name__ == "__main__":
    main()
