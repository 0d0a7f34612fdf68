"""The spectral model "bands": built like any model, its numbers are the tile's statistics, it
has no random parts, and on a real Sentinel-2 scene a head taught on it from 15 tiles per class
separates water, vegetation and other land where shuffled labels do not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scene_data import BANDS, CLASSES, labelled_tiles, teaching_split

import modelkit
from modelkit.errors import ConfigError
from modelkit.models.band_roles import band_roles, canonical
from modelkit.models.factory import random_parts


def test_bands_is_a_model_with_the_timm_contract():
    model = modelkit.create_model("bands", in_chans=5)
    assert "bands" in modelkit.list_models("band*")
    assert model.num_features == 10 and model.num_classes == 0 and model.indices == []
    config = model.data_config
    assert config.in_chans == 5 and config.value_scaling == "none"
    assert config.mean == (0.0,) * 5 and config.std == (1.0,) * 5
    assert model.feature_info.channels() == [15] and model.feature_info.reduction() == [1]
    x = torch.rand(3, 5, 16, 16) * 1000
    maps = model.forward_features(x)
    assert maps.shape == (3, 15, 16, 16)
    assert torch.equal(model.forward_intermediates(x)[0], maps)
    assert isinstance(model.get_classifier(), torch.nn.Identity)
    model.reset_classifier(4)
    assert model(x).shape == (3, 4) and model.get_classifier().out_features == 4
    only = modelkit.create_model("bands", in_chans=5, features_only=True)
    assert [f.shape for f in only(x)] == [(3, 15, 16, 16)]


def test_its_features_are_log_mean_log_std_and_indices_of_the_tile():
    model = modelkit.create_model("bands", in_chans=13, bands=BANDS)
    assert [n for n, _, _ in model.indices] == ["ndvi", "ndwi", "mndwi", "nbr", "ndbi"]
    x = torch.rand(2, 13, 20, 24, dtype=torch.float64) * 3000 + 50
    out = model.forward_head(model.forward_features(x.float()), pre_logits=True).double()
    mean, std = x.mean((2, 3)), x.std((2, 3), unbiased=False)
    torch.testing.assert_close(out[:, :13], mean.log(), rtol=0, atol=1e-5)
    torch.testing.assert_close(out[:, 13:26], std.log(), rtol=0, atol=1e-4)
    nir, red = mean[:, BANDS.index("B8")], mean[:, BANDS.index("B4")]
    torch.testing.assert_close(out[:, 26], (nir - red) / (nir + red), rtol=0, atol=1e-6)
    # a constant band: its std is floored at 1e-4 of its mean, not at float noise
    flat = torch.full((1, 13, 16, 16), 1234.0)
    std_part = model.forward_head(model.forward_features(flat), pre_logits=True)[0, 13:26]
    torch.testing.assert_close(std_part, torch.full((13,), float(np.log(0.1234))))


def test_grid_sums_equal_the_feature_map_summed_over_boxes():
    model = modelkit.create_model("bands", in_chans=4)
    x = torch.rand(2, 4, 37, 45) * 5000
    maps = model.forward_features(x).double()
    rows, cols = [2, 9, 25, 37], [0, 16, 17, 44]
    sums = model.grid_sums(x, rows, cols)
    for i in range(3):
        for j in range(3):
            box = maps[:, :, rows[i] : rows[i + 1], cols[j] : cols[j + 1]].sum((2, 3))
            torch.testing.assert_close(sums[:, :, i, j], box, rtol=1e-9, atol=1e-6)


def test_band_names_reach_it_by_tag_keyword_or_role():
    assert canonical("B08") == "B8" and canonical("b8a") == "B8A" and canonical("SR_B4") == "B4"
    tagged = modelkit.create_model("bands.sentinel2_l1c")
    assert tagged.in_chans == 13 and tagged.band_names == list(BANDS)
    assert len(tagged.indices) == 5
    oli = modelkit.create_model("bands.landsat_oli")
    assert dict((n, (a, b)) for n, a, b in oli.indices)["ndvi"] == (4, 3)  # B5 nir, B4 red
    roles, _ = band_roles(["Red", "NIR", "swir 1"])
    assert roles == {"red": 0, "nir": 1, "swir1": 2}
    plain = modelkit.create_model("bands", in_chans=3, bands=("B2", "B3", "B4"))
    assert plain.indices == [] and "sensor" in plain.adaptations[0]
    named = modelkit.create_model("bands", in_chans=2, bands=("B4", "B8"), sensor="sentinel2")
    assert [n for n, _, _ in named.indices] == ["ndvi"]
    with pytest.raises(ConfigError, match="13 bands"):
        modelkit.create_model("bands.sentinel2_l1c", in_chans=4)
    with pytest.raises(ConfigError, match="sensor='modis'"):
        modelkit.create_model("bands", in_chans=2, bands=("B1", "B2"), sensor="modis")
    with pytest.raises(ConfigError, match="checkpoint_path"):
        modelkit.create_model("bands", checkpoint_path="x.pth")


def test_it_has_no_random_parts_so_results_may_be_cached():
    assert random_parts("bands") == [] and random_parts("bands.sentinel2_l1c") == []
    assert random_parts("bands", num_classes=3) == ["head for 3 classes"]
    a = modelkit.create_model("bands", in_chans=3, pretrained=False)
    b = modelkit.create_model("bands", in_chans=3, pretrained=True)
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(a.forward_head(a.forward_features(x), pre_logits=True),
                       b.forward_head(b.forward_features(x), pre_logits=True))  # fmt: skip


def test_a_head_on_band_statistics_separates_what_shuffled_labels_cannot(tmp_path):
    tiles, labels, _ = labelled_tiles()
    teach, rest = teaching_split()
    options = dict(use_result_cache=False, result_cache=None)
    head = modelkit.train_head([tiles[i] for i in teach], list(labels[teach]),
                               "bands.sentinel2_l1c", **options)  # fmt: skip
    assert head.classes == list(CLASSES) and not head.warnings
    controls = [modelkit.train_head([tiles[i] for i in teach],
                                    list(np.random.default_rng(seed).permutation(labels[teach])),
                                    "bands.sentinel2_l1c", **options)
                for seed in (1, 2, 3)]  # fmt: skip

    def held_out(h) -> float:  # balanced accuracy on the labelled tiles not taught
        got = np.array([p.labels[0] for p in h.predict([tiles[i] for i in rest],
                                                        use_result_cache=False)])  # fmt: skip
        truth = labels[rest]
        return float(np.mean([np.mean(got[truth == k] == k) for k in CLASSES]))

    real = held_out(head)
    fake = float(np.mean([held_out(c) for c in controls]))
    fake_cv = float(np.mean([c.cv_accuracy for c in controls]))
    print(f"bands head: cv {head.cv_accuracy:.3f}, held-out balanced {real:.3f} on {len(rest)} "
          f"tiles; shuffled labels (3 draws): cv {fake_cv:.3f}, held-out {fake:.3f}")  # fmt: skip
    assert head.cv_accuracy > fake_cv + 0.3
    assert real > 0.9 and real > fake + 0.3
