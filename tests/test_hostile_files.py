"""Every malformed or hostile file in ``hostile_corpus`` ends as expected: ImageReadError with a
phrase that says what is wrong, or a correct read. None crashes, hangs, opens other files or uses
unbounded memory.

The corpus runs in one child process (run again after a crash, without the case that crashed),
started by the ``outcomes`` fixture. The child:

- imports ``modelkit.images.read`` without the package ``__init__`` (which once imported torch,
  whose 3 GiB of address space would make an address-space limit meaningless);
- sets RLIMIT_AS to its own address space after imports plus ``HEADROOM`` (1.5 GiB). The largest
  legitimate read here is a 64 MiB image; every bomb must be refused from its header, so a reader
  that tries to allocate what a bomb declares hits the limit and the case fails on its message;
- arms ``faulthandler`` for ``PER_FILE_S`` seconds per file, so a hang ends the child with a
  traceback and the case shows as hung, by name;
- resets the peak RSS (``/proc/self/clear_refs``) before each file and reports the peak after it,
  which must stay under ``PEAK_MIB`` (64 MiB) plus twice the decoded array;
- records every file the reader opens (``sys.addaudithook``), which must be none: uploads are read
  from memory, and OME-XML in the corpus points at ``/etc/passwd``, ``../`` and a file planted in
  the child's working folder.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hostile_corpus as corpus  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HEADROOM = 3 * 2**29  # 1.5 GiB of address space above the child's after imports
PER_FILE_S = int(os.environ.get("HOSTILE_PER_FILE_S", "30"))  # a healthy case takes < 1 s
PEAK_MIB = 64  # peak RSS growth allowed for one file, on top of 2x its decoded array
CASES = {case.name: case for case in corpus.CASES}


# ---- the child -----------------------------------------------------------------------------


def child_main(folder: str) -> None:
    """Read every file listed in ``folder/manifest.json``; one JSON line per case on stdout."""
    import faulthandler
    import resource
    import types

    package = types.ModuleType("modelkit")  # modelkit.images.read without modelkit/__init__ (torch)
    package.__path__ = [str(ROOT / "modelkit")]
    sys.modules["modelkit"] = package
    from PIL import Image

    import modelkit.images.npy  # noqa: F401  (imported now so the audit sees only the readers)
    import modelkit.images.tiff  # noqa: F401
    from modelkit.errors import ImageReadError
    from modelkit.images.read import read_image

    Image.init()
    if os.environ.get("HOSTILE_SELFTEST"):  # see test_child_reports_crashes_hangs_opens_and_memory
        read_image = _misbehaving_reader(read_image)
    manifest = json.loads(Path(folder, "manifest.json").read_text())
    files = {name: Path(folder, "files", f"{i}.bin").read_bytes() for name, i, _ in manifest}
    work = Path(folder, "work", "deeper", "still")  # '../' from here stays in our tmp folder
    work.mkdir(parents=True)
    (work / corpus.SECRET_NAME).write_bytes(files.get("edge/1x1 tiff", b"secret"))
    os.chdir(work)

    opened: list[str] = []
    watching = [False]

    libraries = tuple(
        str(Path(p).resolve()) for p in (sys.prefix, sys.base_prefix, ROOT / "modelkit")
    )

    def audit(event: str, args: tuple) -> None:  # Python's own files may load lazily (codecs)
        if watching[0] and event in ("open", "os.open", "os.listdir", "os.scandir"):
            if not isinstance(args[0], (str, bytes, os.PathLike)):
                return  # an already open file descriptor
            path = str(Path(os.fsdecode(args[0])).resolve())
            if not path.startswith(libraries):
                opened.append(f"{event}:{path}")

    sys.addaudithook(audit)
    vm = int(Path("/proc/self/status").read_text().split("VmSize:")[1].split()[0]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + HEADROOM, vm + HEADROOM))

    def peak_kib() -> int:
        return int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0])

    print(json.dumps({"limit_as": vm + HEADROOM}), flush=True)
    for name, _, filename in manifest:
        print(json.dumps({"start": name}), flush=True)
        data = files[name]
        Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
        before = peak_kib()
        faulthandler.dump_traceback_later(PER_FILE_S, exit=True)
        opened.clear()
        watching[0] = True
        result: dict = {"name": name}
        try:
            image = read_image(data, filename)
        except ImageReadError as error:
            result.update(outcome="error", message=str(error))
        except BaseException as error:  # noqa: B036 - anything else is the bug we look for
            result.update(outcome="other", message=f"{type(error).__name__}: {error}")
        else:
            result.update(outcome="read", shape=list(image.data.shape), dtype=image.dtype,
                          nan_count=image.nan_count, value_range=list(image.value_range),
                          notes=image.notes, nbytes=image.data.nbytes,
                          chw=image.data.ndim == 3 and image.data.dtype.isnative)  # fmt: skip
            del image
        watching[0] = False
        faulthandler.cancel_dump_traceback_later()
        result.update(peak_mib=(peak_kib() - before) / 1024, opened=list(opened))
        print(json.dumps(result), flush=True)


def _misbehaving_reader(real):
    """A stand-in for read_image that does what its data names (open, exit, hang, alloc, rss)."""

    def misbehave(data: bytes, filename: str):
        action = data.decode(errors="replace")
        if action == "open":
            Path("/etc/passwd").read_bytes()
        elif action == "exit":
            os._exit(3)
        elif action == "hang":
            __import__("time").sleep(600)
        elif action == "alloc":
            return bytearray(2 * HEADROOM)
        elif action == "rss":
            blob = b"x" * (200 * 2**20)  # touched, so resident
            raise ValueError(f"held {len(blob)} bytes")
        return real(data, filename)

    return misbehave


if __name__ == "__main__":  # the child: runs before anything below imports modelkit (and torch)
    child_main(sys.argv[1])
    sys.exit(0)

from modelkit.errors import ImageReadError  # noqa: E402
from modelkit.images.read import ReadLimits, read_image  # noqa: E402

# ---- the parent ----------------------------------------------------------------------------


def run_in_child(folder: Path, files: list[tuple[str, str, bytes]], **env: str) -> dict[str, dict]:
    """Outcome of reading each (name, filename, bytes) in the child, by name. A case that ends
    the child is recorded as crashed or hung, and the child starts again after it."""
    (folder / "files").mkdir()
    manifest = []
    for i, (name, filename, data) in enumerate(files):
        (folder / "files" / f"{i}.bin").write_bytes(data)
        manifest.append((name, i, filename))
    results: dict[str, dict] = {}
    remaining = manifest
    env = {**os.environ, "MALLOC_ARENA_MAX": "2", "PYTHONPATH": str(ROOT), **env}
    while remaining:
        (folder / "manifest.json").write_text(json.dumps(remaining))
        shutil.rmtree(folder / "work", ignore_errors=True)
        proc = subprocess.run(
            [sys.executable, __file__, str(folder)],
            capture_output=True,
            text=True,
            env=env,
            timeout=PER_FILE_S * len(remaining) + 60,
        )
        started = None
        for line in proc.stdout.splitlines():
            record = json.loads(line)
            if "start" in record:
                started = record["start"]
            elif "name" in record:
                results[record["name"]] = record
                started = None
        if started is None and proc.returncode != 0:
            pytest.fail(f"the reader child failed outside any case:\n{proc.stderr[-3000:]}")
        if started is None:
            break
        why = "hung" if "Timeout" in proc.stderr else f"crashed (exit code {proc.returncode})"
        results[started] = {"name": started, "outcome": why, "message": proc.stderr[-2000:]}
        remaining = [m for m in remaining if m[0] not in results]
    return results


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, dict]:
    """Outcome of every corpus case, by name."""
    files = [(case.name, *case.make()) for case in corpus.CASES]
    return run_in_child(tmp_path_factory.mktemp("hostile"), files)


def test_child_reports_crashes_hangs_opens_and_memory(tmp_path):
    """The harness itself: a stand-in reader that misbehaves on purpose is caught each time,
    and the cases after a crash or a hang still run."""
    actions = ["open", "exit", "hang", "alloc", "rss", "fine"]
    files = [(a, f"{a}.npy", corpus.npy(np.ones((2, 2))) if a == "fine" else a.encode())
             for a in actions]  # fmt: skip
    got = run_in_child(tmp_path, files, HOSTILE_SELFTEST="1", HOSTILE_PER_FILE_S="3")
    assert any("/etc/passwd" in path for path in got["open"]["opened"])
    assert got["exit"]["outcome"] == "crashed (exit code 3)"
    assert got["hang"]["outcome"] == "hung" and "misbehave" in got["hang"]["message"]
    assert got["alloc"]["outcome"] == "other" and "MemoryError" in got["alloc"]["message"]
    assert got["rss"]["outcome"] == "other" and got["rss"]["peak_mib"] >= 150
    assert got["fine"]["outcome"] == "read" and got["fine"]["shape"] == [1, 2, 2]


def test_corpus_is_large_and_covers_every_category():
    categories = {case.category for case in corpus.CASES}
    assert len(corpus.CASES) >= 50
    assert categories >= {"truncated", "corrupt", "bomb", "numpy", "empty", "nonfinite",
                          "wrongtype", "ome", "edge"}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_file(name, outcomes):
    case, got = CASES[name], outcomes[name]
    assert got["outcome"] in ("error", "read"), f"{name}: {got['outcome']}: {got['message']}"
    assert got["opened"] == [], f"{name}: the reader opened files: {got['opened']}"
    if case.error is not None:
        assert got["outcome"] == "error", f"{name}: expected an error, got a read: {got}"
        message = got["message"]
        assert case.error in message, f"{name}: message lacks {case.error!r}: {message}"
        assert case.filename in message, f"{name}: message does not name the file: {message}"
    else:
        assert got["outcome"] == "read", f"{name}: expected a read, got: {got['message']}"
        assert tuple(got["shape"]) == case.shape and got["dtype"] == case.dtype, got
        assert got["chw"], f"{name}: data is not a native-order 3-D array"
        assert got["nan_count"] == case.nan_count, got
        if case.value_range is not None:
            assert tuple(got["value_range"]) == pytest.approx(case.value_range), got
        if case.note is not None:
            assert any(case.note in n for n in got["notes"]), got["notes"]
    allowed = PEAK_MIB + 2 * got.get("nbytes", 0) / 2**20
    assert got["peak_mib"] <= allowed, f"{name}: peak RSS grew {got['peak_mib']:.0f} MiB"


# ---- mutation fuzzing of valid files of every format -----------------------------------------

SEED_BYTES = {name: build() for name, build in corpus.SEEDS.items()}
# Small limits keep every mutated header's worst case (what the limits let through) to 64 MiB.
FUZZ_LIMITS = ReadLimits(max_pixels=2**22, max_channels=64, max_bytes=64 * 2**20)
FUZZ_PEAK_MIB = 64 + 2 * 64  # peak RSS growth for one read: slack + 2x the largest array allowed
INTERESTING = [
    0,
    1,
    2,
    7,
    8,
    255,
    256,
    2**15 - 1,
    2**15,
    2**16 - 1,
    2**31 - 1,
    2**32 - 1,
    2**63 - 1,
]


@st.composite
def mutated(draw) -> tuple[str, bytes]:
    """A seed file with 1-4 mutations: bit flips, bytes set, cuts, insertions, deletions, or a
    2/4/8-byte header field (little or big endian) set to a boundary value."""
    name = draw(st.sampled_from(sorted(SEED_BYTES)))
    data = bytearray(SEED_BYTES[name])
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete", "field", "field"]))
        # header fields matter most: half the positions fall in the first 64 bytes
        end = len(data) - 1
        pos = draw(st.one_of(st.integers(0, min(63, end)), st.integers(0, end)))
        if op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 64))]
        else:
            width = draw(st.sampled_from([2, 4, 8]))
            value = draw(st.sampled_from(INTERESTING + [len(data), len(data) - pos]))
            order = draw(st.sampled_from(["little", "big"]))
            field = (value % 2 ** (8 * width)).to_bytes(width, order)
            data[pos : pos + width] = field[: len(data) - pos]
    return name, bytes(data)


def peak_rss_mib() -> float:
    return int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]) / 1024


def reset_peak_rss() -> float:
    """Set this process's peak RSS to its current RSS (Linux 4.0+) and return it in MiB."""
    Path("/proc/self/clear_refs").write_text("5")
    return peak_rss_mib()


def _timeout(signum, frame):
    raise TimeoutError(f"one read took over {PER_FILE_S} s")


@contextmanager
def address_space_limit():
    """This process's address space limited to what it has now plus HEADROOM, for one read: a
    read that tries to allocate far beyond FUZZ_LIMITS gets MemoryError instead of the machine's
    memory. The previous limit comes back afterwards."""
    previous = resource.getrlimit(resource.RLIMIT_AS)
    vm = int(Path("/proc/self/status").read_text().split("VmSize:")[1].split()[0]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + HEADROOM, previous[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, previous)


@settings(
    max_examples=int(os.environ.get("HOSTILE_FUZZ_EXAMPLES", 700)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(case=mutated())
def test_fuzzed_files_read_or_raise_image_read_error(case):
    name, data = case
    before = reset_peak_rss()
    signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(PER_FILE_S)  # a hang in Python code fails the example instead of the run
    try:
        with address_space_limit():
            image = read_image(data, name, limits=FUZZ_LIMITS)
    except ImageReadError as error:
        assert name in str(error)
        assert "not enough memory" not in str(error), "a read within FUZZ_LIMITS ran out of memory"
        return
    finally:
        signal.alarm(0)
        grown = peak_rss_mib() - before
        assert grown <= FUZZ_PEAK_MIB, f"reading {name} raised peak RSS by {grown:.0f} MiB"
    array = image.data
    assert isinstance(array, np.ndarray) and array.ndim == 3 and array.size > 0
    assert 1 <= image.num_channels <= FUZZ_LIMITS.max_channels
    assert image.height * image.width <= FUZZ_LIMITS.max_pixels
    assert array.nbytes <= FUZZ_LIMITS.max_bytes and array.dtype.isnative
    assert image.dtype == str(array.dtype) and array.dtype.kind in "biuf"
    if array.dtype.kind == "f":
        assert image.nan_count == array.size - np.count_nonzero(np.isfinite(array))
    else:
        assert image.nan_count == 0
    low, high = image.value_range
    assert np.isfinite(low) and np.isfinite(high) and low <= high
