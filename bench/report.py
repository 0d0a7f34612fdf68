"""Run every benchmark and write one markdown report, bench/REPORT.md.

    .venv/bin/python bench/report.py --threads 1   # the committed REPORT.md (~5 min, 2 cores)
    .venv/bin/python bench/report.py              # the same with torch's default threads
    .venv/bin/python bench/report.py --quick      # small inputs, few repeats (a few minutes)
    .venv/bin/python bench/report.py --devices cpu,cuda --out /tmp/REPORT.md

Sections: factory, readers, engine, end to end through gradio_client, memory. Every table sets
modelkit against a baseline measured side by side in the same run, with a ratio column and a
one-line "what this means"; notes say where a goal was missed. Device-dependent tables get a row
per device in ``--devices``; a device this machine lacks gets a "not measured" row.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
os.environ.setdefault("MODELKIT_OFFLINE", "1")

from benchtable import NO_GPU, Table  # noqa: E402

SECTIONS = ["Factory", "Readers", "Engine", "End to end through gradio_client", "Memory"]
VERSIONS = ["torch", "torchvision", "gradio", "gradio_client", "numpy", "pillow", "tifffile"]


@dataclass(frozen=True)
class Settings:
    """How hard each benchmark works: --quick for a smoke run, the default for the report."""

    factory_build_repeats: int = 9
    factory_repeats: int = 3
    io_repeat: int = 5
    io_small: bool = False
    engine_repeats: int = 21
    e2e_repeats: int = 20
    e2e_starts: int = 3
    cycle: bool = True


QUICK = Settings(factory_build_repeats=1, factory_repeats=1, io_repeat=2, io_small=True,
                 engine_repeats=5, e2e_repeats=3, e2e_starts=1, cycle=False)  # fmt: skip


@dataclass
class Report:
    """Tables (or markdown paragraphs) per section, and the seconds each section took."""

    sections: dict[str, list[Table | str]] = field(
        default_factory=lambda: {name: [] for name in SECTIONS}
    )
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, section: str, *items: Table | str) -> None:
        self.sections[section].extend(items)


def merge(into: Table, other: Table, device: str) -> None:
    """The rows of the same table measured on another device, its meaning as a note."""
    into.rows.extend(other.rows)
    if other.meaning:
        into.notes.append(f"{device}: {other.meaning}")


def per_device(devices: list[str], available: set[str], make) -> list[Table]:
    """``make(device) -> list[Table]`` for each device; a missing device gets empty rows."""
    tables: list[Table] | None = None
    missing = []
    for device in devices:
        if device not in available:
            missing.append(device)
            continue
        made = make(device)
        if tables is None:
            tables = made
        else:
            for into, other in zip(tables, made, strict=True):
                merge(into, other, device)
    for table in tables or []:
        for device in missing:
            table.add_device_not_measured(device, NO_GPU if device == "cuda" else "not measured")
    return tables or []


def run_all(settings: Settings, devices: list[str]) -> Report:
    import bench_e2e
    import bench_engine
    import bench_factory
    import bench_http
    import bench_io
    import torch

    available = {"cpu"} | ({"cuda"} if torch.cuda.is_available() else set())
    report = Report()
    s = settings

    def timed_section(name: str, fn) -> None:
        start = time.perf_counter()
        print(f"[report] {name} ...", file=sys.stderr, flush=True)
        fn()
        report.seconds[name] = report.seconds.get(name, 0.0) + time.perf_counter() - start

    def factory() -> None:
        report.add("Factory", bench_factory.build_table(s.factory_build_repeats))
        report.add("Factory", *per_device(devices, available, lambda d: [
            bench_factory.forward_table(s.factory_repeats, 224, torch.device(d))]))  # fmt: skip

    def readers() -> None:
        timing, peak = bench_io.collect(s.io_repeat, s.io_small)
        timing.notes.append("Readers decode on the CPU whatever the model's device: no GPU rows.")
        report.add("Readers", timing)
        report.add("Memory", peak)

    def engine() -> None:
        report.add("Engine", *per_device(devices, available, lambda d: [
            bench_engine.overhead(torch.device(d), s.engine_repeats),
            bench_engine.result_cache_latency(torch.device(d), s.engine_repeats)]))  # fmt: skip

    def e2e() -> None:
        latency, memory = per_device(devices, available, lambda d: bench_e2e.collect(
            s.e2e_repeats, s.e2e_starts, d))  # fmt: skip
        report.add("End to end through gradio_client", latency)
        report.add("End to end through gradio_client", *per_device(devices, available,
                   lambda d: bench_http.collect(s.e2e_repeats, d)))  # fmt: skip
        report.add("Memory", memory)

    def cycle() -> None:
        if not s.cycle:
            report.add("Memory", "*Model cycling (20 models through a 2 GB cache): skipped in "
                       "`--quick`; run without it.*\n")  # fmt: skip
            return
        report.add("Memory", *per_device(devices, available, lambda d: [
            bench_engine.cycle_memory(torch.device(d))]))  # fmt: skip

    timed_section("Factory", factory)
    timed_section("Readers", readers)
    timed_section("Engine", engine)
    timed_section("End to end through gradio_client", e2e)
    timed_section("Model cycling", cycle)  # last: it leaves this process holding ~3 GB
    return report


# --- rendering ----------------------------------------------------------------------------------
def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _commit() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE.parent,
                              capture_output=True, text=True, timeout=10)  # fmt: skip
        return done.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    import psutil
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU only)"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "CPU": f"{_cpu_model()}, {os.cpu_count()} cores ({usable} usable), "
        f"torch threads per process: {torch.get_num_threads()}",
        "RAM": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "GPU": gpu,
        "Python": platform.python_version(),
        "Packages": ", ".join(f"{p} {_version(p)}" for p in VERSIONS),
        "OS": platform.platform(),
        "Commit": _commit(),
    }


def render(report: Report, info: dict[str, str], command: str, started: datetime.datetime,
           total_s: float, load: tuple[tuple[float, ...], tuple[float, ...]],
           settings: Settings = Settings()) -> str:  # fmt: skip
    """The whole report as markdown."""
    quick = settings == QUICK
    lines = [
        "# modelkit benchmark report",
        "",
        f"Generated {started:%Y-%m-%d %H:%M} UTC by `{command}` in {total_s / 60:.1f} min. "
        "Regenerate with the same command; `--quick` gives a smaller smoke run.",
        "",
        "## Machine",
        "",
        *[f"- **{k}:** {v}" for k, v in info.items()],
        f"- **Load average (1, 5, 15 min):** {_load(load[0])} at the start, "
        f"{_load(load[1])} at the end",
        f"- **Settings:** {'--quick: ' if quick else ''}"
        + ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(settings).items()),
        "- **Run time per part:** "
        + ", ".join(f"{k.lower()} {v:.0f} s" for k, v in report.seconds.items()),
        "",
        "## How to read this",
        "",
        "- Every table runs modelkit and a baseline doing the same work side by side in the same "
        "run, interleaved run by run where it can be, and reports medians (p50) and, for "
        "latency, p90. A ratio is modelkit / baseline: below 1 is faster or smaller than the "
        "baseline.",
        "- **The numbers are noisy.** The machine has 2 CPU cores and was shared with other "
        "sessions running test suites while this ran (see the load average), so absolute "
        "times move by tens of percent between runs; ratios of interleaved runs move less. "
        "Read single-digit percentages as noise.",
        *_caveats(quick, load, command),
        "- GPU rows say *not measured* when the machine has no GPU; the scripts take "
        "`--device cuda` (and this report `--devices cpu,cuda`) where one exists.",
        "",
        "## Headlines",
        "",
    ]
    for section, items in report.sections.items():
        for item in items:
            if isinstance(item, Table) and item.meaning:
                lines.append(f"- **{section}:** {item.meaning}")
    for number, (section, items) in enumerate(report.sections.items(), start=1):
        lines += ["", f"## {number}. {section}", ""]
        for item in items:
            lines.append(item.to_markdown() if isinstance(item, Table) else item)
    return "\n".join(lines).rstrip() + "\n"


def _caveats(quick: bool, load: tuple[tuple[float, ...], ...], command: str) -> list[str]:
    """The "how to read" lines that depend on this run."""
    out = []
    if quick:
        out.append(
            "- **This is a --quick run:** small inputs and few repeats; the reader memory "
            "multiples are dominated by fixed allocations. Use the full run for conclusions."
        )
    peak, cores = max(load[0][0], load[1][0]), os.cpu_count() or 1  # the 1-minute averages
    if peak > cores:
        out.append(
            f"- **This run was overloaded:** the 1-minute load average reached {peak:.1f} on "
            f"{cores} cores, so every process waited for a core; absolute times are several "
            "times those of an idle machine and single ratios can flip. Trust ratios that agree "
            "across tables, and rerun on a quiet machine for absolute numbers."
        )
    if "--threads 1" in command:
        out.append(
            "- **One torch thread per process** (`--threads 1`, also MODELKIT_CPU_THREADS for "
            "the server): on a shared 2-core machine, two threads per process stall each other "
            "when another process takes a core (single forwards 10-30x the median), one thread "
            "gives steady times. Both sides of every ratio run with the same setting."
        )
    return out


def _load(values: tuple[float, ...]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small inputs, few repeats")
    parser.add_argument("--devices", default="cpu,cuda", help="comma-separated: cpu,cuda")
    parser.add_argument("--out", type=Path, default=HERE / "REPORT.md")
    parser.add_argument("--threads", type=int, help="torch threads per process, server included")
    args = parser.parse_args()
    if args.threads:  # before torch is imported; subprocesses and the app inherit it
        os.environ["OMP_NUM_THREADS"] = os.environ["MODELKIT_CPU_THREADS"] = str(args.threads)
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    started = datetime.datetime.now(datetime.UTC)
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    settings = QUICK if args.quick else Settings()
    report = run_all(settings, devices)
    total = time.perf_counter() - t0
    command = ".venv/bin/python bench/report.py" + (" --quick" if args.quick else "")
    if args.devices != "cpu,cuda":
        command += f" --devices {args.devices}"
    if args.threads:
        command += f" --threads {args.threads}"
    text = render(report, machine(), command, started, total, (load_start, os.getloadavg()),
                  settings)  # fmt: skip
    args.out.write_text(text)
    print(f"[report] wrote {args.out} in {total:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
