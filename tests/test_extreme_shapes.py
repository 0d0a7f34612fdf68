"""Extreme image shapes the readers accept, run through everything a visitor's upload reaches:
read, predict and features (efficientnet_lite0, pretrained), the preview composite, the band
thumbnails and statistics, the model-input view and the overlay figure.

Each case ends in a correct result or a ModelkitError, and no step grows the peak memory by more
than ``GROWTH_MIB`` beyond the decoded array (issue 17: a 370-byte 1 x 100,000 16-bit PNG used
to ask for 26 GB). The cases run in one child process (started once per test module) that
builds the models first, then resets its peak RSS (``/proc/self/clear_refs``) before each step
and reports the peak (``VmHWM``) after it.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
GROWTH_MIB = 300  # allowed peak growth of one step beyond the decoded array
MODEL = "efficientnet_lite0"


def pattern(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Deterministic structured pixels: diagonal stripes plus a gradient, full range of dtype."""
    top = 255 if dtype == "uint8" else 65535
    channels, height, width = shape
    y = np.arange(height, dtype=np.float32)[:, None]
    x = np.arange(width, dtype=np.float32)[None, :]
    planes = [((x * (c + 1) + y * 3) % 97) / 97 * 0.6 + x / max(width, 1) * 0.4
              for c in range(channels)]  # fmt: skip
    return (np.stack(planes) * top).astype(dtype)


def encode(array: np.ndarray, fmt: str) -> bytes:
    """(C, H, W) array -> file bytes in ``fmt`` (png: 1 or 3 channels, tif, npy)."""
    buffer = io.BytesIO()
    if fmt == "png":
        from PIL import Image

        plane = array[0] if array.shape[0] == 1 else np.moveaxis(array, 0, -1)
        Image.fromarray(plane).save(buffer, format="PNG")
    elif fmt == "tif":
        import tifffile

        tifffile.imwrite(buffer, array[0] if array.shape[0] == 1 else array)
    else:
        np.save(buffer, array)
    return buffer.getvalue()


def _cases() -> list[tuple[str, str, tuple[int, int, int], str, bool]]:
    """(name, format, (C, H, W), dtype, slow)."""
    # the fast set: the 370-byte PNG, its transpose, a 3-row strip, one pixel; the
    # other reader/dtype combinations of the strips run with the slow tests
    fast = {"1x100000 uint16 png", "100000x1 uint8 npy", "1x100000 uint8 tif"}
    cases = []
    for height, width in [(1, 100_000), (100_000, 1)]:
        for dtype in ("uint8", "uint16"):
            for fmt in ("png", "tif", "npy"):
                name = f"{height}x{width} {dtype} {fmt}"
                cases.append((name, fmt, (1, height, width), dtype, name not in fast))
    cases += [
        ("3x20000 rgb png", "png", (3, 3, 20_000), "uint8", False),
        ("20000x3 rgb png", "png", (3, 20_000, 3), "uint8", True),
        ("1 pixel png", "png", (1, 1, 1), "uint8", False),
        ("1 pixel rgb png", "png", (3, 1, 1), "uint8", True),
        # the largest the read limits allow: 100 M pixels per band (RGB uint8, 300 MB decoded),
        # and one 16-bit band of 100 M pixels (the float path)
        ("limit 3x10000x10000 uint8 npy", "npy", (3, 10_000, 10_000), "uint8", True),
        ("limit 1x10000x10000 uint16 npy", "npy", (1, 10_000, 10_000), "uint16", True),
    ]
    return cases


CASES = _cases()


# ---- the child -----------------------------------------------------------------------------


def _rss_kib(field: str) -> int:
    return int(Path("/proc/self/status").read_text().split(f"{field}:")[1].split()[0])


def child_main(folder: str) -> None:
    """Run every case in ``folder/manifest.json``; one JSON line per case on stdout."""
    import torch

    from modelkit.app import figures
    from modelkit.errors import ModelkitError
    from modelkit.images import display
    from modelkit.images.read import read_image
    from modelkit.models.registry import get_pretrained_cfg
    from modelkit.runtime import engine

    torch.set_num_threads(2)
    run = dict(pretrained=True, use_result_cache=False)
    for chans in (1, 3):  # build both models first: their memory is not the image's
        small = np.zeros((chans, 32, 32), np.uint8)
        engine.predict(small, MODEL, in_chans=chans, **run)
        engine.features(small, MODEL, in_chans=chans, **run)
    config = get_pretrained_cfg(MODEL).data_config()

    def step(record: dict, name: str, fn):
        Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
        before = _rss_kib("VmRSS")
        try:
            value = fn()
        except ModelkitError as error:
            record[name] = {"error": type(error).__name__, "message": str(error)}
            value = None
        except Exception as error:  # noqa: BLE001 - anything else is the bug looked for
            record[name] = {"bug": f"{type(error).__name__}: {error}"}
            value = None
        else:
            record[name] = {}
        record[name]["growth_mib"] = (_rss_kib("VmHWM") - before) / 1024
        return value

    def finite(levels) -> bool:
        return all(bool(np.isfinite(lv["array"]).all()) for lv in levels)

    # (step, what it computes from the image and the earlier results, what the parent checks)
    steps = [
        ("predict", lambda im, got: engine.predict(im, MODEL, top_k=3, **got["kw"]),
         lambda p: dict(labels=p.labels, probabilities=[float(v) for v in p.probabilities])),
        ("features", lambda im, got: engine.features(im, MODEL, **got["kw"]),
         lambda f: dict(shapes=[list(lv["array"].shape) for lv in f.levels],
                        finite=finite(f.levels))),
        ("composite", lambda im, got: display.composite(im),
         lambda rgb: dict(shape=list(rgb.shape), dtype=str(rgb.dtype))),
        ("thumbnails", lambda im, got: display.band_thumbnails(im),
         lambda thumbs: dict(shapes=[list(t.shape) for t in thumbs])),
        ("stats", lambda im, got: display.band_stats(im),
         lambda stats: dict(means=[s["mean"] for s in stats])),
        ("input_view", lambda im, got: figures.input_view(display.composite(im), config),
         lambda view: dict(shape=list(view.shape))),
        ("model_view", lambda im, got: figures.input_view(im, config),
         lambda view: dict(shape=list(view.shape))),
        ("overlay", lambda im, got: figures.mean_overlay_figure(
            got["features"].levels[-1]["array"], got["input_view"]).to_json(), lambda _: {}),
    ]  # fmt: skip
    manifest = json.loads(Path(folder, "manifest.json").read_text())
    for name, filename in manifest:
        data = Path(folder, filename).read_bytes()
        record: dict = {"name": name}
        image = step(record, "read", lambda: read_image(data, filename))  # noqa: B023
        if image is not None:
            record["read"].update(shape=list(image.data.shape), nbytes=image.data.nbytes)
            got = {"kw": dict(in_chans=image.num_channels, **run)}
            for key, compute, summary in steps:
                got[key] = step(record, key, lambda: compute(image, got))  # noqa: B023
                if got[key] is None:
                    break
                record[key].update(summary(got[key]))
        print(json.dumps(record), flush=True)


# ---- the parent ----------------------------------------------------------------------------


def run_cases(cases, tmp_path: Path) -> dict[str, dict]:
    manifest = []
    for i, (name, fmt, shape, dtype, _) in enumerate(cases):
        filename = f"case{i}.{fmt}"
        (tmp_path / filename).write_bytes(encode(pattern(shape, dtype), fmt))
        manifest.append((name, filename))
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    env = dict(os.environ, MODELKIT_OFFLINE="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, __file__, str(tmp_path)],
        capture_output=True, text=True, timeout=900, env=env, cwd=str(ROOT),
    )  # fmt: skip
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {r["name"]: r for r in records}


def check(record: dict, shape: tuple[int, int, int]) -> None:
    name = record["name"]
    bugs = {k: v["bug"] for k, v in record.items() if isinstance(v, dict) and "bug" in v}
    assert not bugs, f"{name}: {bugs}"
    assert record["read"]["shape"] == list(shape), name
    decoded = record["read"]["nbytes"] / 2**20
    for step, result in record.items():
        if isinstance(result, dict):
            extra = result["growth_mib"] - (decoded if step == "read" else 0)
            assert extra < GROWTH_MIB, f"{name}: {step} grew {result['growth_mib']:.0f} MiB"
    assert "error" not in record["predict"], record["predict"]  # every case here is readable
    probabilities = record["predict"]["probabilities"]
    assert len(record["predict"]["labels"]) == 3 and 0 < sum(probabilities) <= 1.0001
    assert record["features"]["finite"] and record["features"]["shapes"][-1][1:] == [7, 7]
    height, width, _ = record["composite"]["shape"]
    assert max(height, width) <= 2048 and record["composite"]["dtype"] == "uint8"
    if max(shape[1:]) <= 2048:
        assert (height, width) == shape[1:], name
    assert len(record["thumbnails"]["shapes"]) == shape[0]
    assert all(max(t) <= 128 for t in record["thumbnails"]["shapes"])
    assert record["input_view"]["shape"] == [224, 224, 3]
    assert record["model_view"]["shape"] == [224, 224, 3]
    assert "error" not in record["overlay"]


FAST = [c for c in CASES if not c[4]]
SLOW = [c for c in CASES if c[4]]


@pytest.fixture(scope="module")
def fast_records(tmp_path_factory):
    return run_cases(FAST, tmp_path_factory.mktemp("extreme"))


@pytest.mark.parametrize("case", FAST, ids=[c[0] for c in FAST])
def test_extreme_shape_is_bounded_and_correct(case, fast_records):
    check(fast_records[case[0]], case[2])


def test_strip_statistics_match_numpy(fast_records):
    # the bounded statistics are the plain ones: mean of the decoded pattern
    for name, _, shape, dtype, _ in FAST:
        expected = pattern(shape, dtype).reshape(shape[0], -1).mean(axis=1, dtype=np.float64)
        np.testing.assert_allclose(fast_records[name]["stats"]["means"], expected, rtol=1e-9)


@pytest.fixture(scope="module")
def slow_records(tmp_path_factory):
    return run_cases(SLOW, tmp_path_factory.mktemp("extreme-slow"))


@pytest.mark.slow
@pytest.mark.parametrize("case", SLOW, ids=[c[0] for c in SLOW])
def test_other_strips_and_the_largest_readable_images_are_bounded(case, slow_records):
    # the largest: 100 M pixels per band, the read limit (RGB uint8, 286 MiB decoded; uint16)
    check(slow_records[case[0]], case[2])


if __name__ == "__main__":
    child_main(sys.argv[1])
