"""map_scene and SceneMap: a 13-band scene taught from a few tiles is mapped in place (read back
with tifffile's own GeoTIFF reader), the map equals the head's own predictions tile for tile,
every edge cell is covered, blending leaves no tile-shaped steps, dense equals tiles where it
must, no-data cells are skipped, and outputs are written."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from scene_data import SCENE, bands_head, labelled_tiles, scene_pixels

import modelkit
from modelkit.config import DataConfig
from modelkit.runtime.settings import RunSettings
from modelkit.scenes.dense import dense_input, pooled_grid
from modelkit.scenes.export import probability_path
from modelkit.scenes.run import ModelRun, RunSpec
from modelkit.scenes.scaling import Scaling


def test_a_13_band_scene_taught_from_a_few_tiles_is_mapped_in_place(tmp_path):
    head = bands_head()
    scene_map = modelkit.map_scene(SCENE, head=head)
    assert isinstance(scene_map, modelkit.SceneMap)
    assert scene_map.mode == "dense" and scene_map.tile == 16 and scene_map.cell == 8
    assert scene_map.class_map.shape == (64, 64) and scene_map.classes == head.classes
    assert scene_map.crs == 32618
    assert scene_map.transform == (439340.0, 160.0, 0.0, 4175060.0, 0.0, -160.0)
    # the labelled tiles' cells carry the rule's class
    _, labels, where = labelled_tiles()
    got = [scene_map.classes[scene_map.class_map[r // 8 + 1, c // 8 + 1]] for r, c in where]
    agreement = float(np.mean(np.array(got) == labels))
    assert agreement > 0.9, agreement
    assert abs(sum(a["fraction"] for a in scene_map.area) - 1) < 1e-9
    assert sum(a["km2"] for a in scene_map.area) == pytest.approx(512 * 512 * 0.0004)
    path = scene_map.save(tmp_path / "map.tif")
    with tifffile.TiffFile(path) as tif:  # an independent reader: tifffile's own GeoTIFF parse
        geo = tif.geotiff_metadata
        page = tif.pages.first
        assert int(geo["ProjectedCSTypeGeoKey"]) == 32618
        assert int(geo["GTRasterTypeGeoKey"]) == 1  # pixel is area
        assert list(geo["ModelPixelScale"][:2]) == [160.0, 160.0]
        assert list(geo["ModelTiepoint"][3:5]) == [439340.0, 4175060.0]
        assert page.photometric == tifffile.PHOTOMETRIC.PALETTE and page.dtype == np.uint8
        assert np.array_equal(page.asarray(), scene_map.class_map.astype(np.uint8))
        assert page.colormap.shape == (3, 256)
        described = json.loads(page.description)
        assert described["classes"] == head.classes and described["cell"] == 8
        assert "CLASS_2" in page.tags[42112].value and page.tags[42113].value == "255"
        assert 34264 not in page.tags and 273 in page.tags  # only the GeoTIFF tags were added
    with tifffile.TiffFile(probability_path(path)) as tif:
        probs = tif.asarray()
        assert int(tif.geotiff_metadata["ProjectedCSTypeGeoKey"]) == 32618
    np.testing.assert_array_equal(probs, scene_map.probabilities)


@pytest.mark.parametrize("mode", ["tiles", "dense"])
def test_the_map_equals_the_heads_own_predictions_tile_for_tile(mode):
    head = bands_head()
    crop = np.ascontiguousarray(scene_pixels()[:, 96:256, 32:192])  # 10 x 10 tiles of 16
    scene_map = modelkit.map_scene(crop, head=head, tile=16, stride=16, mode=mode)
    tiles = [crop[:, r : r + 16, c : c + 16] for r in range(0, 160, 16) for c in range(0, 160, 16)]
    answers = head.predict(tiles, top_k=3, use_result_cache=False)
    expected = np.array([[a.probabilities[a.labels.index(k)] for k in head.classes]
                         for a in answers]).T.reshape(3, 10, 10)  # fmt: skip
    np.testing.assert_allclose(scene_map.probabilities, expected, rtol=0, atol=1e-5)
    assert np.array_equal(scene_map.class_map, expected.argmax(0))


def test_a_cnn_head_gives_its_own_predictions_in_tiles_mode():
    rng = np.random.default_rng(0)
    scene = rng.integers(0, 255, (3, 96, 96), dtype=np.uint8)
    scene[:, :, 32:64] //= 3  # three textures, one per tile column
    scene[:, :, 64:] = scene[:, :, 64:] // 2 + 128
    tiles = [scene[:, r : r + 32, c : c + 32] for r in (0, 32, 64) for c in (0, 32, 64)]
    labels = ["noise", "dark", "bright"] * 3
    head = modelkit.train_head(tiles, labels, "efficientnet_lite0", folds=3,
                               use_result_cache=False)  # fmt: skip
    scene_map = modelkit.map_scene(scene, head=head, tile=32, stride=32, mode="tiles")
    answers = head.predict(tiles, top_k=3, use_result_cache=False)
    expected = np.array([[a.probabilities[a.labels.index(k)] for k in head.classes]
                         for a in answers]).T.reshape(3, 3, 3)  # fmt: skip
    np.testing.assert_allclose(scene_map.probabilities, expected, rtol=0, atol=1e-5)
    auto = modelkit.map_scene(scene, head=head, tile=32, stride=16)  # a probe chose the mode
    said = [n for n in auto.notes if "sample tiles" in n]
    assert len(said) == 1 and said[0].lower().startswith(auto.mode)


class LocalMeans(torch.nn.Module):
    """A model whose feature map is the 8 x 8 block means of its one band (no context)."""

    data_config = DataConfig(input_size=(1, 32, 32), mean=(0.0,), std=(1.0,), crop_pct=1.0)
    num_classes = 2

    def forward_features(self, x):
        return torch.nn.functional.avg_pool2d(x, 8)

    def forward_head(self, x, pre_logits=False):
        mean = x.mean((2, 3))
        return mean if pre_logits else torch.cat([mean, -mean], 1)


def test_dense_mode_averages_each_tiles_footprint_on_the_feature_map():
    spec = RunSpec(RunSettings("bands", scaling="none"))  # the settings are not read here
    run = ModelRun(spec, LocalMeans(), None, torch.device("cpu"), None)
    window = np.random.default_rng(0).random((1, 104, 96)).astype(np.float32)
    rows, cols = np.array([8, 24, 48, 64]), np.array([0, 16, 40, 56])
    x = dense_input(run, Scaling("none"), window, 32)
    pooled = pooled_grid(run, x, (8, 0), rows, cols, 32)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            box = window[0, r - 8 : r + 24, c : c + 32].mean()
            assert float(pooled[i, j, 0, 0]) == pytest.approx(float(box), abs=1e-6)


def test_overlapping_tiles_leave_no_edge_cell_uncovered():
    crop = np.ascontiguousarray(scene_pixels()[:, :101, :77])  # not a multiple of the stride
    scene_map = modelkit.map_scene(crop, head=bands_head(), tile=16, stride=6)
    assert scene_map.class_map.shape == (17, 13)  # ceil(101 / 6), ceil(77 / 6)
    assert (scene_map.class_map >= 0).all() and np.isfinite(scene_map.probabilities).all()
    np.testing.assert_allclose(scene_map.probabilities.sum(0), 1, atol=1e-5)
    for mode in ("tiles", "dense"):  # the same cells either way (bands: same statistics)
        other = modelkit.map_scene(crop, head=bands_head(), tile=16, stride=6, mode=mode)
        np.testing.assert_allclose(other.probabilities, scene_map.probabilities, atol=1e-5)


def test_one_texture_gives_no_tile_shaped_steps():
    """A marsh-like texture (water and vegetation pixels mixed at random): each tile's answer
    wobbles with its own mix. Unblended (stride = tile), neighbouring cells are different
    tiles, so their difference has the spread of two independent answers (sqrt 2 sigma);
    blended at half a tile, a cell averages 4 tiles and shares 2 with its neighbour, so the
    step has sigma / 2: about 0.35 of the unblended step. Bound: 0.6."""
    head = bands_head()
    tiles, labels, _ = labelled_tiles()
    water = np.median([t for t, k in zip(tiles, labels, strict=True) if k == "water"], 0)
    green = np.median([t for t, k in zip(tiles, labels, strict=True) if k == "vegetation"], 0)
    spectra = [water.mean((1, 2)), green.mean((1, 2))]
    pick = np.random.default_rng(0).random((256, 256)) < 0.35
    scene = np.where(pick[None], spectra[1][:, None, None], spectra[0][:, None, None])
    scene = scene.astype(np.uint16)

    def steps(stride: int) -> float:
        probs = modelkit.map_scene(scene, head=head, tile=16, stride=stride).probabilities
        p = probs[head.classes.index("water")]
        return float(np.mean(np.r_[np.abs(np.diff(p, axis=0)).ravel(),
                                   np.abs(np.diff(p, axis=1)).ravel()]))  # fmt: skip

    unblended, blended = steps(16), steps(8)
    assert unblended > 0.01  # the texture does move the answer
    assert blended < 0.6 * unblended, (blended, unblended)


def test_no_data_cells_are_minus_one_and_their_tiles_are_not_run():
    crop = scene_pixels()[:, :128, :128].astype(np.float32)
    crop[:, :, :48] = 0  # a swath edge
    crop[:, 100:, 100:] = np.nan
    scene_map = modelkit.map_scene(crop, head=bands_head(), tile=16, stride=8)
    empty = scene_map.class_map < 0
    assert empty[:, :6].all() and not empty[:, 7:12].any() and empty[13:, 13:].all()
    assert np.isnan(scene_map.probabilities[:, empty]).all()
    # tiles of no data only: those starting at columns 0..32 (5 of 15 per row) and the 2 x 2
    # that start at 104 or 112 in both directions, inside the NaN corner
    assert scene_map.timings["tiles_skipped"] == 5 * 15 + 2 * 2
    assert any("no data" in n for n in scene_map.notes)
    assert sum(a["cells"] for a in scene_map.area) == (~empty).sum()


def test_outputs_png_csv_and_embeddings(tmp_path):
    crop = np.ascontiguousarray(scene_pixels()[:, :96, :96])
    scene_map = modelkit.map_scene(crop, head=bands_head(), embeddings=True)
    assert scene_map.embeddings.shape == (12, 12, 31) and scene_map.embeddings.dtype == np.float16
    assert scene_map.embedding_rgb.shape == (12, 12, 3) and scene_map.embedding_rgb.std() > 0
    assert scene_map.transform is None and scene_map.crs is None
    assert any("no georeferencing" in n for n in scene_map.notes)
    png = Image.open(scene_map.save_png(tmp_path / "map.png"))
    assert png.width >= 12 * 16 and png.mode == "RGB"
    rows = list(csv.DictReader(open(scene_map.save_csv(tmp_path / "areas.csv"))))
    assert [r["class"] for r in rows] == scene_map.classes and rows[0]["km2"] == ""
    assert sum(int(r["pixels"]) for r in rows) == 96 * 96
    path = scene_map.save(tmp_path / "plain.tif", probabilities=False)
    with tifffile.TiffFile(path) as tif:
        assert tif.geotiff_metadata is None and 33550 not in tif.pages.first.tags
    assert not probability_path(path).exists()
