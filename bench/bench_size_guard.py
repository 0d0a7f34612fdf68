"""The build factor of the model-size guard: peak memory of a model's build against its
parameter bytes (parameters x 4, float32).

    .venv/bin/python bench/bench_size_guard.py [--quick]

Each build runs in a fresh process: modelkit and the registry are loaded, a checkpoint (for the
"checkpoint" rows) is written and its model dropped, the heap trimmed, the kernel's peak-RSS mark
reset (``/proc/self/clear_refs``, 5), then the model is built through the model cache the way the
app builds it. Growth = peak RSS (VmHWM) minus RSS before the build. Factor = growth / parameter
bytes. ``modelkit.models.size_guard.BUILD_FACTOR`` is set above the largest factor measured, with
a margin (the estimate must not let a build through that then exhausts the memory). The guard's
own time and memory on the 7-billion-parameter request are measured last (no build happens).

Measured here (2 cores, load average 1.6-3.0 from other work, 1 torch thread): factor 1.01-1.46
for random builds, 2.00-2.13 for torchvision models and timm's Swin loading a .pth checkpoint,
1.01-1.18 for timm's assigning loads, at most 2.32 (efficientnet_b0, whose 20 MB leave the fixed
costs visible); vit_l_16 from a checkpoint: 2,325 MB peak for 1,161 MB of parameters. The guard
refused timm/vit_7b_patch16_dinov3 in 0.02-0.03 s with 5-6 MB of RSS growth.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchtable import Table, print_tables  # noqa: E402

CHILD = r"""
import gc, json, os, sys, tempfile, time
sys.path.insert(0, {root!r})
os.environ["MODELKIT_OFFLINE"] = "1"
import torch
from modelkit import create_model, list_models
from modelkit.runtime.model_cache import ModelCache, ModelKey, trim_heap

torch.set_num_threads(1)
list_models()  # the registry (timm's index) is loaded before the baseline
name, case = {name!r}, {case!r}
kwargs = dict(in_chans=13, num_classes=10) if case.endswith("adapted") else {{}}
checkpoint = None
if case.startswith("checkpoint"):
    model = create_model(name)
    fd, checkpoint = tempfile.mkstemp(suffix=".pth")
    os.close(fd)
    torch.save(model.state_dict(), checkpoint)
    del model
gc.collect(); trim_heap()

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status("VmRSS:")
t0 = time.perf_counter()
cache = ModelCache(builder=lambda n, **kw: create_model(n, checkpoint_path=checkpoint, **kw))
model, _ = cache.get(ModelKey(name, **kwargs))
seconds = time.perf_counter() - t0
peak = status("VmHWM:")
from modelkit.models.size_guard import known_params
params = known_params(name)  # what the guard multiplies (default settings)
if checkpoint:
    os.remove(checkpoint)
print(json.dumps(dict(params=params, growth=peak - before, seconds=seconds)))
"""

GUARD = r"""
import json, os, sys, time
sys.path.insert(0, {root!r})
import numpy as np, psutil
from modelkit import list_models, predict
from modelkit.errors import ModelTooLargeError
list_models()
process = psutil.Process()
before = process.memory_info().rss
t0 = time.perf_counter()
try:
    predict(np.zeros((3, 64, 64), np.float32), "timm/vit_7b_patch16_dinov3", pretrained=False)
    refused = False
except ModelTooLargeError:
    refused = True
print(json.dumps(dict(refused=refused, seconds=time.perf_counter() - t0,
                      growth=process.memory_info().rss - before)))
"""

MODELS = [
    "resnet50", "efficientnet_b0", "convnext_base", "vit_b_16", "vit_l_16", "regnet_y_16gf",
    "timm/resnet50", "timm/convnext_base", "timm/vit_base_patch16_224",
    "timm/vit_large_patch16_224", "timm/swin_base_patch4_window7_224",
]  # fmt: skip
QUICK = ["resnet50", "vit_b_16", "timm/vit_base_patch16_224"]
CASES = ["random", "checkpoint", "checkpoint adapted"]
FORMATS = {"params (M)": ".1f", "param MB": ".0f", "peak growth MB": ".0f", "factor": ".2f",
           "build s": ".1f"}  # fmt: skip


def run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="three models only")
    args = parser.parse_args()
    table = Table(
        "Peak memory of a build against its parameter bytes",
        ["model", "case", "params (M)", "param MB", "peak growth MB", "factor", "build s"],
        formats=FORMATS,
        meaning="factor = peak RSS growth of the build / (parameters x 4 bytes); fresh process "
        "per row, 1 torch thread",
    )
    for name in QUICK if args.quick else MODELS:
        for case in CASES:
            r = run(CHILD.format(root=str(ROOT), name=name, case=case))
            mb = r["params"] * 4 / 2**20
            table.add(name, case, r["params"] / 1e6, mb, r["growth"] / 2**20,
                      r["growth"] / (r["params"] * 4), r["seconds"])  # fmt: skip
    from modelkit.models.size_guard import BUILD_FACTOR

    table.notes.append(f"largest factor {max(table.column('factor')):.2f}; "
                       f"BUILD_FACTOR in use: {BUILD_FACTOR}")  # fmt: skip
    guard = run(GUARD.format(root=str(ROOT)))
    refusal = Table(
        "The guard on timm/vit_7b_patch16_dinov3 (pretrained=False, through predict)",
        ["refused", "seconds", "RSS growth MB"],
        formats={"seconds": ".2f", "RSS growth MB": ".0f"},
    )
    refusal.add(guard["refused"], guard["seconds"], guard["growth"] / 2**20)
    refusal.notes.append(f"load average (1, 5, 15 min): {os.getloadavg()}")
    print_tables([table, refusal])


if __name__ == "__main__":
    main()
