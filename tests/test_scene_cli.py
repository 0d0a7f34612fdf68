"""``python -m modelkit map``: writes the map, its probabilities, a PNG and a CSV with a
progress bar; refuses an output it cannot write before any work; batch still works through the
same entry point (tests/test_batch.py runs it)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tifffile
from scene_data import ROOT, SCENE, bands_head

from modelkit.scenes.cli import outputs, parser


def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modelkit", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout)  # fmt: skip


@pytest.mark.slow  # a child process (imports torch)
def test_the_command_maps_the_example_scene_and_writes_four_files(tmp_path):
    head = bands_head().save(tmp_path / "head.safetensors")
    out = tmp_path / "map.tif"
    done = run("map", str(SCENE), "--head", str(head), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "64 x 64 cells of 8 pixels (dense mode, EPSG:32618)" in done.stdout
    assert "water:" in done.stdout and "km2" in done.stdout
    assert "window" in done.stderr  # the progress bar counts windows
    files = outputs(out)
    assert all(files[k].is_file() for k in ("map", "probabilities", "png", "csv"))
    assert not files["parts"].exists()
    with tifffile.TiffFile(out) as tif:
        assert int(tif.geotiff_metadata["ProjectedCSTypeGeoKey"]) == 32618
        assert tif.pages.first.shape == (64, 64)
    assert np.unique(tifffile.imread(out)).tolist() == [0, 1, 2]


def test_an_output_that_cannot_be_written_is_refused_before_any_work(tmp_path):
    out = tmp_path / "missing" / "map.tif"
    done = run("map", str(SCENE), "--model", "efficientnet_lite0", "--out", str(out))
    assert done.returncode == 2 and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr and "window" not in done.stderr
    assert not (tmp_path / "missing").exists()
    needs_one = run("map", str(SCENE), "--out", str(tmp_path / "m.tif"))
    assert needs_one.returncode == 2 and "--model" in needs_one.stderr


def test_the_parser_knows_both_commands():
    args = parser().parse_args(["map", "s.tif", "--model", "bands", "--out", "m.tif",
                                "--tile", "32", "--stride", "16", "--mode", "dense",
                                "--engine", "ray", "--channels", "3,2,1"])  # fmt: skip
    assert (args.tile, args.stride, args.mode, args.engine) == (32, 16, "dense", "ray")
    assert args.channels == (3, 2, 1)
    assert parser().parse_args(["batch", "x", "--model", "m", "--out", "o.csv"]).command == "batch"
