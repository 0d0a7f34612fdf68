"""A scene larger than memory allows is mapped in windows: 10,001 x 10,000 pixels x 13 bands
(2.6 GB as uint16; over read_image's 100 M pixel limit), one compressed striped page per band,
mapped with the bands head while the process's memory is sampled: it grows by far less than
the scene. Slow (writing and reading 2.6 GB of pixels)."""

from __future__ import annotations

import threading
import time

import numpy as np
import psutil
import pytest
import tifffile
from scene_data import bands_head, labelled_tiles

import modelkit
from modelkit.errors import ImageReadError

pytestmark = pytest.mark.slow
HEIGHT, WIDTH = 10_001, 10_000
GROWTH_LIMIT = 600 * 2**20


def spectra() -> np.ndarray:
    tiles, labels, _ = labelled_tiles()
    return np.stack([np.median([t.mean((1, 2)) for t, k in zip(tiles, labels, strict=True)
                                if k == kind], 0) for kind in ("water", "vegetation")])  # fmt: skip


def write_large(path) -> None:
    """Left half water, right half vegetation, a faint ripple; one striped page per band."""
    water, green = spectra()
    ripple = (np.arange(WIDTH) % 7).astype(np.uint16)
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for b in range(13):
            row = np.where(np.arange(WIDTH) < WIDTH // 2, water[b], green[b]).astype(np.uint16)
            band = np.broadcast_to(row + ripple, (HEIGHT, WIDTH))
            tif.write(band, rowsperstrip=64, compression="zlib", compressionargs={"level": 1},
                      photometric="minisblack", metadata=None)  # fmt: skip


class PeakMemory:
    """The process's resident memory, sampled every 20 ms while in the block."""

    def __init__(self) -> None:
        self.process, self.peak, self.stop = psutil.Process(), 0, threading.Event()

    def _watch(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)

    def __enter__(self) -> PeakMemory:
        self.start = self.process.memory_info().rss
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def test_a_scene_larger_than_memory_allows_is_mapped_in_windows(tmp_path):
    head = bands_head()
    path = tmp_path / "large.tif"
    write_large(path)
    with pytest.raises(ImageReadError, match="100,010,000 pixels per band"):
        modelkit.read_image(path.read_bytes(), "large.tif")
    with PeakMemory() as memory:
        scene_map = modelkit.map_scene(path, head=head)
    growth = memory.peak - memory.start
    print(f"mapped {HEIGHT} x {WIDTH} x 13 in {scene_map.timings['total_ms'] / 1e3:.1f} s "
          f"({scene_map.timings['windows']} windows); memory grew {growth / 2**20:.0f} MiB "
          f"(the scene is {13 * HEIGHT * WIDTH * 2 / 2**30:.1f} GiB as uint16)")  # fmt: skip
    assert growth < GROWTH_LIMIT
    assert scene_map.class_map.shape == (1251, 1250) and (scene_map.class_map >= 0).all()
    fractions = {row["class"]: row["fraction"] for row in scene_map.area}
    assert fractions["water"] == pytest.approx(0.5, abs=0.01)
    assert fractions["vegetation"] == pytest.approx(0.5, abs=0.01)
