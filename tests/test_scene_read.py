"""Reading a scene window by window: every TIFF layout gives the pixels tifffile gives for the
whole file; georeferencing from the tags (area and point, matrix, EPSG); no data; files that
cannot be read by windows are refused in words."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tifffile
from scene_data import SCENE, geo_tags, scene_pixels, write_scene

from modelkit.errors import ImageReadError
from modelkit.images.limits import ImageArray
from modelkit.scenes import tiff_windows
from modelkit.scenes.georef import geotiff_tags, read_georef
from modelkit.scenes.windows import nodata_mask, open_scene

DATA = np.random.default_rng(0).integers(0, 5000, (5, 300, 270)).astype(np.uint16)
LAYOUTS = {
    "tiled, planes": dict(tile=(64, 32)),
    "strips of 7 rows, planes": dict(rowsperstrip=7),
    "tiled, interleaved": dict(tile=(32, 32), planarconfig="contig"),
    "strips, interleaved, raw": dict(rowsperstrip=300, planarconfig="contig", compression=None),
    "strips, planes, raw, big-endian": dict(rowsperstrip=13, compression=None, byteorder=">"),
    "LZW + predictor": dict(rowsperstrip=16, compression="lzw", predictor=True),
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_window_equals_the_same_pixels_of_the_whole_file(layout, tmp_path):
    options = dict(LAYOUTS[layout])
    data = DATA if options.get("planarconfig") != "contig" else np.moveaxis(DATA, 0, -1)
    if options.get("planarconfig") == "contig":
        options["extrasamples"] = [0] * 4
    path = write_scene(tmp_path / "s.tif", data, **options)
    for source in (path, path.read_bytes()):
        with open_scene(source) as scene:
            assert scene.shape == (5, 300, 270) and scene.dtype == np.uint16
            assert np.array_equal(scene.read(17, 250, 33, 260), DATA[:, 17:250, 33:260])
            assert np.array_equal(scene.read(0, 1, 269, 270, [4, 0]), DATA[[4, 0], :1, 269:])


def test_one_band_per_page_in_one_series_or_many(tmp_path):
    one = tmp_path / "series.tif"
    tifffile.imwrite(one, DATA, rowsperstrip=10, compression="zlib", photometric="minisblack",
                     planarconfig=None, metadata={"axes": "QYX"})  # fmt: skip
    many = tmp_path / "pages.tif"
    with tifffile.TiffWriter(many) as tif:
        for band in DATA:
            tif.write(band, tile=(32, 32), compression="zlib", photometric="minisblack")
    for path in (one, many):
        with open_scene(path) as scene:
            assert scene.shape == (5, 300, 270)
            assert np.array_equal(scene.read(5, 290, 1, 200), DATA[:, 5:290, 1:200])


def test_the_example_scene_reads_with_its_names_and_place():
    with open_scene(SCENE) as scene:
        assert scene.shape == (13, 512, 512) and scene.tiled
        assert scene.band_names[8] == "B8A"
        assert scene.georef.crs == 32618 and scene.georef.transform[1:3] == (20.0, 0.0)
        assert np.array_equal(scene.read(100, 400, 250, 512), scene_pixels()[:, 100:400, 250:])


def test_arrays_and_image_arrays_are_scenes_without_georeferencing():
    image = ImageArray(DATA, "x.npy", "npy", DATA.shape, "CYX", "uint16", (0, 1), ["a"] * 5)
    for source, bands in ((DATA, 5), (image, 5), (DATA[0], 1)):
        with open_scene(source) as scene:
            assert scene.georef is None and "no georeferencing" in scene.notes[-1]
            assert np.array_equal(scene.read(3, 9, 4, 8), DATA[:bands, 3:9, 4:8])


def _georef(tmp_path, tags):
    path = write_scene(tmp_path / "g.tif", DATA[:1], tags)
    with tifffile.TiffFile(path) as tif:
        return read_georef(tif.pages.first)


def test_georeferencing_from_tiepoint_scale_matrix_and_raster_type(tmp_path):
    area, notes = _georef(tmp_path, geo_tags(500000.0, 4200000.0, 20.0, 32618))
    assert area.transform == (500000.0, 20.0, 0.0, 4200000.0, 0.0, -20.0) and area.crs == 32618
    assert not notes and area.metres_per_unit == 1.0 and not area.geographic
    point, _ = _georef(tmp_path, geo_tags(500000.0, 4200000.0, 20.0, 32618, point=True))
    assert point.transform == (499990.0, 20.0, 0.0, 4200010.0, 0.0, -20.0)  # half a pixel
    assert dict(zip(point.geokeys[4::4], point.geokeys[7::4], strict=True))[1025] == 1
    degrees, _ = _georef(tmp_path, geo_tags(10.0, 50.0, 0.001, 4326, geographic=True))
    assert degrees.crs == 4326 and degrees.geographic
    matrix = [(34264, "d", 16, (10.0, 1.0, 0.0, 300.0, 2.0, -10.0, 0.0, 900.0, 0, 0, 0, 0,
                                0, 0, 0, 1), True)]  # fmt: skip
    rotated, _ = _georef(tmp_path, matrix)
    assert rotated.transform == (300.0, 10.0, 1.0, 900.0, 2.0, -10.0) and rotated.crs is None
    gcps = [(33922, "d", 12, (0, 0, 0, 1.0, 2.0, 0, 10, 10, 0, 3.0, 4.0, 0), True)]
    none, notes = _georef(tmp_path, gcps)
    assert none is None and "ground control points" in notes[0]
    plain, notes = _georef(tmp_path, [])
    assert plain is None and "no georeferencing" in notes[0]
    # written back: only the GeoTIFF tags, the transform as given
    tags = geotiff_tags(area, area.scaled(8))
    assert sorted(t[0] for t in tags) == [33550, 33922, 34735]
    assert tags[0][3] == (160.0, 160.0, 0.0)


def test_no_data_is_nan_the_nodata_value_or_all_bands_zero(tmp_path):
    window = np.ones((3, 4, 4), np.float32)
    window[:, 0, 0] = 0
    window[1, 1, 1] = np.nan
    window[:, 2, 2] = -9999
    window[0, 3, 3] = 0  # one band only: data
    assert sorted(zip(*np.nonzero(nodata_mask(window, -9999)), strict=True)) == [
        (0, 0),
        (1, 1),
        (2, 2),
    ]
    path = write_scene(tmp_path / "n.tif", DATA[:2], [(42113, "s", 0, "-9999", True)])
    with open_scene(path) as scene:
        assert scene.nodata == -9999.0
    wrapped = np.full((2, 2, 2), 65536 - 9999, np.uint16)  # what -9999 would wrap to in uint16
    assert not nodata_mask(wrapped, -9999).any()


def test_what_cannot_be_read_by_windows_is_refused_in_words(tmp_path, monkeypatch):
    monkeypatch.setattr(tiff_windows, "SEGMENT_BYTES", 2**20)  # as if 1 MiB were the limit
    huge = write_scene(tmp_path / "one_strip.tif", np.zeros((1, 2000, 2000), np.uint8),
                       rowsperstrip=2000)  # fmt: skip
    with pytest.raises(ImageReadError, match="too large to read window by window.*TILED=YES"):
        open_scene(huge)
    raw = write_scene(tmp_path / "raw.tif", np.zeros((1, 2000, 2000), np.uint8),
                      rowsperstrip=2000, compression=None)  # fmt: skip
    with open_scene(raw) as scene:  # uncompressed: read row by row, whatever the strip
        assert scene.read(5, 7, 0, 3).shape == (1, 2, 3)
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.zeros((2, 3, 8, 8), np.uint8), photometric="minisblack",
                     metadata={"axes": "TCYX"})  # fmt: skip
    with pytest.raises(ImageReadError, match="planes along axis T"):
        open_scene(buf.getvalue())
    with pytest.raises(ImageReadError, match="does not exist"):
        open_scene(tmp_path / "missing.tif")
    cut = tmp_path / "cut.tif"  # the first 3 KiB of the example scene: its tags point past them
    cut.write_bytes(SCENE.read_bytes()[:3000])
    with pytest.raises(ImageReadError, match="damaged"):
        with open_scene(cut) as scene:
            scene.read(0, 512, 0, 512)
