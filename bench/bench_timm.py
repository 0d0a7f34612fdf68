"""The timm source, side by side with its baselines (no downloads).

    .venv/bin/python bench/bench_timm.py [--repeats 3] [--starts 3] [--searches 30]

Table 1: create_model("timm/<arch>.<tag>", checkpoint_path=...) vs timm.create_model(arch,
pretrained=True, pretrained_cfg_overlay={"file": ...}) of the same fabricated checkpoint,
interleaved, median of --repeats (.pth at 3 and 5 input channels, .safetensors at 5; the road
create_model took). Goal: <= 1.05x.
Table 2: app start (``import app``: every page module and the form built, in a fresh process)
and the first page load's search (all models), with and without the timm source (a process
that empties ``sources.LAZY_SOURCES`` before anything is imported). Goal: start <= 1.1x.
Table 3: search latency p50 / p90 over all models (as the page asks on load), a word, and
timm only, in one process that ran the search once. Goal: all models <= 50 ms p50.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("MODELKIT_OFFLINE", "1")

from bench_factory import interleaved  # noqa: E402
from benchtable import Table, percentile, print_tables  # noqa: E402

NAMES = {"resnet18": "a1_in1k", "resnet50": "a1_in1k", "convnext_tiny": "fb_in1k",
         "vit_small_patch16_224": "augreg_in21k_ft_in1k",
         "swin_tiny_patch4_window7_224": "ms_in1k"}  # fmt: skip
# (file type, in_chans) per model: .pth at 3 and 5 channels, and the Hub's own .safetensors
DEFAULT_ROWS = [(".pth", 3), (".pth", 5), (".safetensors", 5)]
ROWS = {"swin_tiny_patch4_window7_224": [(".pth", 3), (".pth", 5)]}

_CHILD = """
import json, statistics, sys, time
t0 = time.perf_counter()
if {no_timm}:
    import modelkit.models.sources as s
    s.LAZY_SOURCES.clear()
sys.path.insert(0, {root!r})
import app  # noqa: F401  (builds the page)
t1 = time.perf_counter()
from modelkit.app import form
form.search_models("")  # the page's first search
t2 = time.perf_counter()
laps = {{}}
for query, source in [("", ""), ("vit", ""), ("", "timm")]:
    if {no_timm} and source:
        continue
    runs = []
    for _ in range({searches}):
        a = time.perf_counter(); form.search_models(query, source=source)
        runs.append(time.perf_counter() - a)
    laps[f"{{query or '(all)'}}|{{source or 'all'}}"] = runs
print(json.dumps({{"start": t1 - t0, "first": t2 - t1, "laps": laps,
                  "count": len(form.search_models(""))}}))
"""


def _road(make) -> str:
    """Which road create_model took for ``make()``: without init, with init, or plain."""
    from modelkit.models import timm_loading

    assigned, plain, taken = timm_loading._assigned, timm_loading._plain, []

    def assigned_spy(*args, init):
        model = assigned(*args, init=init)
        taken.append("with init" if init else "without init")
        return model

    timm_loading._assigned = assigned_spy
    timm_loading._plain = lambda *a, **k: taken.append("plain") or plain(*a, **k)
    try:
        make()
    finally:
        timm_loading._assigned, timm_loading._plain = assigned, plain
    return taken[-1]


def build_table(repeats: int) -> Table:
    import timm

    from modelkit import create_model

    table = Table(
        f"create_model('timm/...') vs timm.create_model, same checkpoint (CPU, median of "
        f"{repeats})",
        ["model", "file", "in_chans", "road", "timm s", "create_model s", "ratio"],
        formats={"timm s": ".3f", "create_model s": ".3f", "ratio": ".2f"},
    )
    with tempfile.TemporaryDirectory() as tmp:
        for arch, tag in NAMES.items():
            torch.manual_seed(0)
            sd = timm.create_model(arch).state_dict()
            for suffix, chans in ROWS.get(arch, DEFAULT_ROWS):
                path = str(Path(tmp) / f"{arch}{suffix}")
                if not Path(path).exists():
                    _save(sd, path)

                def theirs(a=arch, p=path, c=chans):
                    return timm.create_model(a, pretrained=True, in_chans=c,
                                             pretrained_cfg_overlay={"file": p})  # fmt: skip

                def ours(a=arch, t=tag, p=path, c=chans):
                    return create_model(f"timm/{a}.{t}", checkpoint_path=p, in_chans=c)

                road = _road(ours)  # also the first use: timm imported, labels read
                t = interleaved({"timm": theirs, "ours": ours}, repeats)
                table.add(arch, suffix, chans, road, t["timm"], t["ours"], t["ours"] / t["timm"])
    ratios = table.column("ratio")
    med = statistics.median(ratios)
    table.meaning = (
        f"create_model for timm models takes {med:.2f}x timm.create_model (median; "
        f"{min(ratios):.2f}-{max(ratios):.2f}x); goal <= 1.05x: "
        f"{'met' if med <= 1.05 else 'missed'} on the median."
    )
    table.notes += [
        "Both read the same file with timm's reader. 'without init': timm builds with its "
        "parameters on the meta device and its loader assigns the checkpoint's tensors (no "
        "random init, no copy); modelkit adapts the stem just before the load.",
        "'with init': a builder that computes from its weights (Swin's attention masks) stops "
        "the meta build at once and is built with timm's init, then loaded the same way.",
    ]
    return table


def _save(sd: dict, path: str) -> None:
    if path.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in sd.items()}, path)
    else:
        torch.save(sd, path)


def child(no_timm: bool, searches: int, cache: str) -> dict:
    code = _CHILD.format(no_timm=no_timm, root=str(ROOT), searches=searches)
    env = dict(os.environ, MODELKIT_CACHE_DIR=cache, GRADIO_ANALYTICS_ENABLED="False")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=str(ROOT), check=True, timeout=900)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def start_and_search(starts: int, searches: int) -> list[Table]:
    runs = {False: [], True: []}
    with tempfile.TemporaryDirectory() as cache:
        child(False, 1, cache)  # timm facts cache warm-up is not part of a start
        for _ in range(starts):
            for no_timm in (True, False):
                runs[no_timm].append(child(no_timm, searches, cache))
    start = Table(
        f"app start (import app in a fresh process) and its first search, median of {starts}",
        ["source set", "models", "start s", "first search s", "start ratio"],
        formats={"start s": ".2f", "first search s": ".3f", "start ratio": ".3f"},
    )
    base = statistics.median(r["start"] for r in runs[True])
    for no_timm, label in ((True, "without timm"), (False, "with timm")):
        rs = runs[no_timm]
        s = statistics.median(r["start"] for r in rs)
        start.add(label, rs[0]["count"], s, statistics.median(r["first"] for r in rs), s / base)
    ratio = start.rows[1][4]
    start.meaning = (
        f"App start with the timm source takes {ratio:.3f}x the start without it; goal <= 1.1x: "
        f"{'met' if ratio <= 1.1 else 'missed'}. The page's first search lists timm too "
        "(index read from the shipped file, no timm import)."
    )
    search = Table(
        f"search latency, {searches} searches each, after a first one",
        ["source set", "query|source", "p50 ms", "p90 ms"],
        formats={"p50 ms": ".1f", "p90 ms": ".1f"},
    )
    for no_timm, label in ((True, "without timm"), (False, "with timm")):
        laps: dict[str, list[float]] = {}
        for r in runs[no_timm]:
            for key, values in r["laps"].items():
                laps.setdefault(key, []).extend(values)
        for key, values in laps.items():
            ms = [v * 1e3 for v in values]
            search.add(label, key, percentile(ms, 50), percentile(ms, 90))
    all_with = [r for r in search.rows if r[0] == "with timm" and r[1] == "(all)|all"][0][2]
    search.meaning = (
        f"A search over all {runs[False][0]['count']} models takes {all_with:.1f} ms p50 with "
        f"timm; goal <= 50 ms: {'met' if all_with <= 50 else 'missed'}."
    )
    return [start, search]


def collect(repeats: int = 3, starts: int = 3, searches: int = 30) -> list[Table]:
    return [build_table(repeats), *start_and_search(starts, searches)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--searches", type=int, default=30)
    args = parser.parse_args()
    started = time.perf_counter()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print_tables(collect(args.repeats, args.starts, args.searches))
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
