"""Coverage-guided fuzzing of modelkit.read_image with atheris (libFuzzer), for long runs.

    .venv/bin/python scripts/fuzz_readers.py [libFuzzer flags, e.g. -max_total_time=600]

The first input byte picks a file name (so every extension is tried against every content); the
rest is the file. Starting inputs are the valid seed files of tests/hostile_corpus.py, written to
$TMPDIR/modelkit-fuzz-corpus (kept between runs; name another folder to use it). Any exception but
ImageReadError, a hang (-timeout, 20 s by default) or memory beyond -rss_limit_mb (3 GiB by
default) is a finding: libFuzzer stops and writes the input to crash-*/timeout-*/oom-* files.
The reader runs with small ReadLimits (64 MiB decoded), as the in-suite fuzzer does, so every
allocation the limits allow stays small and anything bigger is a bug.

The quick, bounded version runs in CI: tests/test_hostile_files.py (hypothesis mutations).
"""

from __future__ import annotations

import sys
import tempfile
import types
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parent.parent
NAMES = ["a.png", "a.jpg", "a.tif", "a.ome.tif", "a.npy", "a.npz", "a.gif", "a.bmp", "a.webp"]

with atheris.instrument_imports():
    package = types.ModuleType("modelkit")  # modelkit.images.read without modelkit/__init__ (torch)
    package.__path__ = [str(ROOT / "modelkit")]
    sys.modules["modelkit"] = package
    import modelkit.images.npy  # noqa: F401
    import modelkit.images.tiff  # noqa: F401
    from modelkit.errors import ImageReadError
    from modelkit.images.read import ReadLimits, read_image

LIMITS = ReadLimits(max_pixels=2**22, max_channels=64, max_bytes=64 * 2**20)


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    name = NAMES[data[0] % len(NAMES)]
    try:
        image = read_image(data[1:], name, limits=LIMITS)
    except ImageReadError:
        return
    assert image.data.ndim == 3 and image.data.size > 0, image.data.shape
    assert image.dtype == str(image.data.dtype)


def write_seeds(folder: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    import hostile_corpus

    folder.mkdir(exist_ok=True)
    for i, (name, build) in enumerate(hostile_corpus.SEEDS.items()):
        ext = next((n for n in NAMES if name.endswith(n[1:])), NAMES[0])
        (folder / f"seed-{i}").write_bytes(bytes([NAMES.index(ext)]) + build())


def main() -> None:
    corpus = Path(tempfile.gettempdir()) / "modelkit-fuzz-corpus"
    write_seeds(corpus)
    args = [sys.argv[0], *sys.argv[1:]]
    if not any(a.startswith("-timeout") for a in args):
        args.append("-timeout=20")
    if not any(a.startswith("-rss_limit_mb") for a in args):
        args.append("-rss_limit_mb=3072")
    if not any(not a.startswith("-") for a in args[1:]):
        args.append(str(corpus))
    atheris.Setup(args, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
