"""Batch throughput, the Ray engine's overhead and peak memory against the number of files.

    .venv/bin/python bench/bench_batch.py [--files 64] [--model efficientnet_lite0] [--no-ray]

Table 1: images per second of ``modelkit.batch`` (decoding in threads, one batch ahead of the
model) against a bare loop that reads, decodes, preprocesses and runs the same model file by file,
and against a bare loop that does the same in batches of 32 without overlap (what batching alone
gives). Goal: batch >= 1.2x the bare loop. Result cache off everywhere.
Table 2: the Ray engine (local Ray, 2 CPUs, 1 actor) against the local engine on the same files:
start-up (ray.init) and run time.
Table 3: peak RSS of a fresh process running the batch on N and 4N files (Parquet out): goal, the
same peak (memory does not grow with the number of files).
JPEG photos of 480x640 to 960x1280 cut from scikit-image's bundled photos; nothing downloaded.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("MODELKIT_OFFLINE", "1")

from benchtable import Table, print_tables, ratio  # noqa: E402

import modelkit  # noqa: E402
from modelkit.images.preprocess import preprocess  # noqa: E402
from modelkit.runtime.device import configure_cpu_threads  # noqa: E402
from modelkit.runtime.model_cache import ModelCache  # noqa: E402
from modelkit.runtime.settings import RunSettings  # noqa: E402


def make_photos(folder: Path, count: int, seed: int = 0) -> Path:
    from skimage import data

    rng = np.random.default_rng(seed)
    sources = [data.chelsea(), data.coffee(), data.astronaut()]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        photo = Image.fromarray(sources[i % 3])
        side = int(rng.integers(480, 961))
        photo = photo.resize((side * 4 // 3, side), Image.BICUBIC).rotate(int(rng.integers(0, 30)))
        buffer = io.BytesIO()
        photo.save(buffer, "JPEG", quality=90)
        (folder / f"photo_{i:05d}.jpg").write_bytes(buffer.getvalue())
    return folder


def bare_loop(files: list[Path], model, chunk: int) -> float:
    """Seconds to read, decode, preprocess and run every file, ``chunk`` at a time, no overlap."""
    start = time.perf_counter()
    for first in range(0, len(files), chunk):
        xs = [preprocess(modelkit.read_image(f.read_bytes(), f.name), model.data_config)
              for f in files[first : first + chunk]]  # fmt: skip
        with torch.inference_mode():
            model.forward_head(model.forward_features(torch.cat(xs)), pre_logits=False)
    return time.perf_counter() - start


def throughput(folder: Path, name: str, repeats: int) -> Table:
    table = Table(
        f"Images per second, {name}, {len(list(folder.iterdir()))} JPEGs, best of {repeats}",
        ["method", "images/s", "vs bare loop"], formats={"images/s": ".2f", "vs bare loop": ".2f"},
    )  # fmt: skip
    configure_cpu_threads()
    cache = ModelCache()
    model, _ = cache.get(RunSettings(name, pretrained=True, device="cpu").model_key())
    files = sorted(folder.iterdir())
    bare_loop(files[:4], model, 1)  # warm up
    times: dict[str, list[float]] = {"bare": [], "bare32": [], "batch": []}
    for _ in range(repeats):  # interleaved, so a busy moment on the machine hits all three
        times["bare"].append(bare_loop(files, model, 1))
        times["bare32"].append(bare_loop(files, model, 32))
        start = time.perf_counter()
        modelkit.batch(folder, name, pretrained=True, device="cpu", batch_size=32,
                       use_result_cache=False, model_cache=cache)  # fmt: skip
        times["batch"].append(time.perf_counter() - start)
    rate = {k: len(files) / min(v) for k, v in times.items()}
    table.add("bare loop (read, decode, preprocess, run; one file at a time)", rate["bare"], 1.0)
    table.add("bare loop in batches of 32 (no overlap)", rate["bare32"],
              ratio(rate["bare32"], rate["bare"]))  # fmt: skip
    table.add("modelkit.batch (batches of 32, decoding overlaps the model)", rate["batch"],
              ratio(rate["batch"], rate["bare"]))  # fmt: skip
    table.notes.append(f"torch threads {torch.get_num_threads()}, os.cpu_count {os.cpu_count()}")
    return table


def ray_overhead(folder: Path, name: str) -> Table:
    import ray

    table = Table(f"Ray engine vs local engine, {name}, same files (local Ray: 2 CPUs, 1 actor)",
                  ["engine", "start s", "run s", "run vs local"],
                  formats={"start s": ".1f", "run s": ".1f", "run vs local": ".2f"})  # fmt: skip
    options = dict(pretrained=True, use_result_cache=False, batch_size=32)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        modelkit.batch(folder, name, out=Path(tmp) / "local.parquet", **options)
        local = time.perf_counter() - start
        start = time.perf_counter()
        env = {"PYTHONPATH": str(ROOT), "MODELKIT_OFFLINE": "1"}
        ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": env},
                 logging_level="ERROR")  # fmt: skip
        started = time.perf_counter() - start
        start = time.perf_counter()
        modelkit.batch(folder, name, out=Path(tmp) / "ray.parquet", engine="ray", **options)
        on_ray = time.perf_counter() - start
        ray.shutdown()
    table.add("local (model already built in this process)", None, local, 1.0)
    table.add("ray (actor builds its model, then runs)", started, on_ray, ratio(on_ray, local))
    table.notes.append("The Ray run includes starting the actor process and building the model "
                       "in it; on a cluster that cost is paid once per actor.")  # fmt: skip
    return table


CHILD = """
import resource, sys, modelkit
done = modelkit.batch(sys.argv[1], sys.argv[2], pretrained=True, use_result_cache=False,
                      batch_size=16, out=sys.argv[3])
assert done.computed == int(sys.argv[4]) and done.errors == 0, done
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def peak_memory(folder: Path, name: str, counts: list[int]) -> Table:
    table = Table(f"Peak RSS of a fresh process running the batch, {name}, batches of 16",
                  ["files", "peak MiB", "vs fewest"],
                  formats={"peak MiB": ".0f", "vs fewest": ".2f"})  # fmt: skip
    files, peaks = sorted(folder.iterdir()), []
    for count in counts:
        with tempfile.TemporaryDirectory() as tmp:
            part = Path(tmp) / "in"
            part.mkdir()
            for f in files[:count]:
                (part / f.name).symlink_to(f)
            out = subprocess.run([sys.executable, "-c", CHILD, str(part), name,
                                  str(Path(tmp) / "out.parquet"), str(count)], capture_output=True,
                                 text=True, cwd=ROOT, check=True)  # fmt: skip
            peaks.append(float(out.stdout.split()[-1]))
        table.add(count, peaks[-1], ratio(peaks[-1], peaks[0]))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_photos(Path(tmp) / "photos", args.files * 4)
        first = Path(tmp) / "first"
        first.mkdir()
        for f in sorted(folder.iterdir())[: args.files]:
            (first / f.name).symlink_to(f)
        tables = [throughput(first, args.model, args.repeats)]
        if not args.no_ray:
            tables.append(ray_overhead(first, args.model))
        tables.append(peak_memory(folder, args.model, [args.files, args.files * 4]))
        print_tables(tables)


if __name__ == "__main__":
    main()
