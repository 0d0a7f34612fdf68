"""Bad input for map_scene, each refused in words (or handled): no georeferencing, a scene
smaller than a tile, impossible tiles and strides, a head for other bands, thin strips, scenes
over the read limits, an output that cannot be written; and resuming after an interruption."""

from __future__ import annotations

import numpy as np
import pytest
from scene_data import bands_head, geo_tags, scene_pixels, write_scene

import modelkit
from modelkit.errors import ChannelMismatchError, ConfigError, ImageReadError
from modelkit.images.limits import ReadLimits
from modelkit.scenes import api


def crop(rows=64, cols=64) -> np.ndarray:
    return np.ascontiguousarray(scene_pixels()[:, :rows, :cols])


def test_a_scene_without_georeferencing_is_mapped_and_says_so(tmp_path):
    path = write_scene(tmp_path / "plain.tif", crop(), tile=(32, 32))
    scene_map = modelkit.map_scene(path, head=bands_head())
    assert scene_map.transform is None and scene_map.crs is None
    assert scene_map.class_map.shape == (8, 8) and (scene_map.class_map >= 0).all()
    assert any("no georeferencing" in note for note in scene_map.notes)
    assert all(row["km2"] is None for row in scene_map.area)


@pytest.mark.parametrize(
    ("options", "words"),
    [({"tile": 0}, "tile=0 is not valid"), ({"tile": -16}, "tile=-16 is not valid"),
     ({"tile": 65}, "smaller than one tile"), ({"stride": 0}, "stride=0 is not valid"),
     ({"stride": -1}, "stride=-1"), ({"tile": 16, "stride": 17}, "larger than tile=16"),
     ({"tile": 16, "stride": 1000}, "stride=1000 is larger"), ({"tile": 2.5}, "whole number"),
     ({"mode": "fast"}, "mode='fast'"), ({"batch_size": 0}, "batch_size=0"),
     ({"engine": "spark"}, "engine='spark'")],
)  # fmt: skip
def test_impossible_tiles_and_strides_are_refused_in_words(options, words):
    with pytest.raises(ConfigError, match=words):
        modelkit.map_scene(crop(), head=bands_head(), **options)


def test_a_scene_smaller_than_one_tile_is_refused_in_words():
    with pytest.raises(ConfigError, match=r"\(10 x 12 pixels\) is smaller than one tile of 16"):
        modelkit.map_scene(crop(12, 10), head=bands_head())


def test_a_head_for_other_bands_names_both_counts():
    with pytest.raises(ChannelMismatchError, match="taught on 13 bands.*the scene has 4 bands"):
        modelkit.map_scene(crop()[:4], head=bands_head())
    # the head's settings win: another model given beside it is named in the notes, not used
    mapped = modelkit.map_scene(crop(), "resnet18", head=bands_head())
    assert mapped.model.startswith("bands")
    assert any("model 'resnet18' given was not used" in n for n in mapped.notes)
    with pytest.raises(ConfigError, match="no classes of its own"):
        modelkit.map_scene(crop(), "bands")


def thin_strip() -> np.ndarray:
    strip = np.tile(crop(1, 100)[:, :, :1], (1, 1, 100_000))  # 1 x 100,000, 13 bands
    strip[:, :, ::7] += 40
    return strip


def test_a_thin_strip_is_refused_in_words_with_the_default_tile(tmp_path):
    path = write_scene(tmp_path / "strip.tif", thin_strip(), rowsperstrip=1)
    with pytest.raises(ConfigError, match=r"\(100000 x 1 pixels\) is smaller than one tile"):
        modelkit.map_scene(path, head=bands_head())


def test_thin_strips_map_with_a_thin_tile(tmp_path):
    """1 x 100,000 in strips of one row; each 1-pixel tile is resized to the bands model's 16
    pixels, so the windows are cut across the strip to keep that within memory."""
    path = write_scene(tmp_path / "strip.tif", thin_strip(), rowsperstrip=1)
    scene_map = modelkit.map_scene(path, head=bands_head(), tile=1, stride=1)
    assert scene_map.class_map.shape == (1, 100_000) and (scene_map.class_map >= 0).all()
    assert scene_map.timings["windows"] > 1


def test_a_scene_over_the_read_limits_is_read_in_windows(tmp_path, monkeypatch):
    path = write_scene(tmp_path / "s.tif", crop(96, 96), geo_tags(), tile=(32, 32))
    small = ReadLimits(max_pixels=1000)  # as if 96 x 96 were a huge scene
    with pytest.raises(ImageReadError, match="at most 1,000 are accepted"):
        modelkit.read_image(path.read_bytes(), "s.tif", limits=small)
    monkeypatch.setattr(api, "WINDOW_BYTES", 13 * 4 * 40 * 40)  # windows of ~40 x 40 pixels
    windowed = modelkit.map_scene(path, head=bands_head())
    whole = modelkit.map_scene(crop(96, 96), head=bands_head())
    assert windowed.timings["windows"] > 4
    np.testing.assert_allclose(windowed.probabilities, whole.probabilities, atol=1e-5)
    assert windowed.crs == 32618


def test_a_map_too_large_for_memory_is_refused_before_any_work(monkeypatch):
    monkeypatch.setattr(api, "MAP_BYTES", 1000)
    with pytest.raises(ConfigError, match="use a larger stride"):
        modelkit.map_scene(crop(), head=bands_head())


def test_an_output_that_cannot_be_written_is_refused(tmp_path):
    scene_map = modelkit.map_scene(crop(32, 32), head=bands_head())
    for bad, words in ((tmp_path / "missing" / "m.tif", "does not exist"),
                       (tmp_path, "it is a folder")):  # fmt: skip
        with pytest.raises(ConfigError, match=f"Cannot write the map to .*{words}"):
            scene_map.save(bad)


def test_an_interrupted_map_resumes_from_its_finished_windows(tmp_path, monkeypatch):
    monkeypatch.setattr(api, "WINDOW_BYTES", 13 * 4 * 40 * 40)
    scene, parts, seen = crop(96, 96), tmp_path / "map.tif.parts", []

    def stop_after_two(done: int, total: int) -> None:
        seen.append((done, total))
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        modelkit.map_scene(scene, head=bands_head(), parts=parts, progress=stop_after_two)
    assert len(list(parts.glob("window-*.npz"))) == 2
    again: list = []
    resumed = modelkit.map_scene(scene, head=bands_head(), parts=parts,
                                 progress=lambda d, t: again.append(d))  # fmt: skip
    assert again[0] == 2 and again[-1] == seen[0][1] and not parts.exists()
    straight = modelkit.map_scene(scene, head=bands_head())
    np.testing.assert_allclose(resumed.probabilities, straight.probabilities, atol=1e-6)
    assert resumed.timings["windows"] == straight.timings["windows"]
