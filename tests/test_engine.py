"""engine.predict / engine.features with real models (small inputs) and injected caches."""

import io

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from torch import nn

from modelkit.config import DataConfig
from modelkit.errors import ChannelMismatchError, ConfigError, DeviceError
from modelkit.images.read import read_image
from modelkit.runtime import engine
from modelkit.runtime.model_cache import ModelCache, ModelKey
from modelkit.runtime.result_cache import ResultCache
from modelkit.runtime.settings import RunSettings


@pytest.fixture
def caches(tmp_path):
    return {"model_cache": ModelCache(max_models=4), "result_cache": ResultCache(tmp_path / "r")}


@pytest.fixture(scope="module")
def chelsea():
    buf = io.BytesIO()
    Image.fromarray(skimage.data.chelsea()).save(buf, "PNG")
    return buf.getvalue(), read_image(buf.getvalue(), "chelsea.png")


@pytest.fixture
def resnet18_here(monkeypatch, tmp_path, fabricate):
    """resnet18's default weights 'on this machine': a fabricated checkpoint in the hub cache,
    so pretrained=True gives the same weights on every build (results may be cached)."""
    path, _ = fabricate("resnet18")
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    path.rename(hub / "checkpoints" / "resnet18-f37072fd.pth")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))


def small(seed=0, n=1, c=3, size=64):
    return torch.randn(n, c, size, size, generator=torch.Generator().manual_seed(seed))


def test_pretrained_lite0_names_the_cat(chelsea, caches):
    data, image = chelsea
    p = engine.predict(image, "efficientnet_lite0", pretrained=True, image_bytes=data, **caches)
    assert p.labels[:3] == ["tiger cat", "Egyptian cat", "tabby"]
    assert not p.head_is_random and p.logits.shape == (1000,)
    assert p.adaptations and "weights loaded" in p.adaptations[0]
    assert p.probabilities == sorted(p.probabilities, reverse=True)
    assert (p.model_cache_hit, p.result_cache_hit) == (False, False)
    again = engine.predict(image, "efficientnet_lite0", pretrained=True, image_bytes=data, **caches)
    assert again.result_cache_hit and again.labels == p.labels
    np.testing.assert_array_equal(again.logits, p.logits)
    assert again.probabilities == p.probabilities


def test_predict_equals_bare_model_and_random_head(caches):
    x = small()
    p = engine.predict(x, "resnet18", num_classes=7, top_k=3, **caches)
    model = caches["model_cache"].peek(RunSettings("resnet18", num_classes=7).model_key())
    with torch.inference_mode():
        bare = model(x)[0]
    np.testing.assert_array_equal(p.logits, bare.numpy())
    probs = torch.softmax(bare.double(), 0)
    assert p.indices == probs.argsort(descending=True)[:3].tolist()
    np.testing.assert_allclose(p.probabilities, probs.sort(descending=True).values[:3].numpy())
    assert p.head_is_random and p.labels == [f"class {i}" for i in p.indices]
    assert p.timings.total_ms >= p.timings.forward_ms > 0


def test_model_cache_hit_flag_and_top_k_cap(caches):
    x = small()
    first = engine.predict(x, "resnet18", num_classes=4, top_k=10, use_result_cache=False, **caches)
    second = engine.predict(x, "resnet18", num_classes=4, use_result_cache=False, **caches)
    assert (first.model_cache_hit, second.model_cache_hit) == (False, True)
    assert len(first.labels) == 4  # top_k capped at the class count
    assert not second.result_cache_hit and caches["model_cache"].builds == 1


def test_one_model_serves_predictions_and_features(caches):
    x = small(1)
    engine.predict(x, "resnet18", num_classes=5, **caches)
    f = engine.features(x, "resnet18", num_classes=5, out_indices=[1, -1], **caches)
    assert caches["model_cache"].builds == 1 and f.model_cache_hit
    assert [lv["index"] for lv in f.levels] == [1, 4]
    assert [lv["module"] for lv in f.levels] == ["layer1", "layer4"]
    assert [lv["channels"] for lv in f.levels] == [64, 512]
    assert [lv["reduction"] for lv in f.levels] == [4, 32]
    model = caches["model_cache"].peek(RunSettings("resnet18", num_classes=5).model_key())
    with torch.inference_mode():
        ref = model.forward_intermediates(x, [1, 4])
    for lv, r in zip(f.levels, ref, strict=True):
        assert lv["array"].shape == tuple(r.shape[1:]) and lv["array"].dtype == np.float32
        # rounded through float16, exactly as the result cache keeps them
        np.testing.assert_array_equal(
            lv["array"], r[0].numpy().astype(np.float16).astype(np.float32)
        )
        mean = lv["array"].mean(axis=(1, 2), dtype=np.float64)
        np.testing.assert_allclose(lv["channel_mean"], mean, rtol=1e-6)
        assert np.all(np.diff(lv["channel_mean"][lv["channel_rank"]]) <= 0)


def test_features_hit_equals_fresh(caches, resnet18_here):
    x = small(2)
    fresh = engine.features(x, "resnet18", pretrained=True, out_indices=(0, 2), **caches)
    hit = engine.features(x, "resnet18", pretrained=True, out_indices=(0, 2), **caches)
    assert not fresh.result_cache_hit and hit.result_cache_hit
    for a, b in zip(fresh.levels, hit.levels, strict=True):
        assert {k: a[k] for k in ("index", "module", "channels", "reduction")} == {
            k: b[k] for k in ("index", "module", "channels", "reduction")
        }
        for k in ("array", "channel_mean", "channel_rank"):
            np.testing.assert_array_equal(a[k], b[k])
    other = engine.features(x, "resnet18", pretrained=True, out_indices=(0,), **caches)  # miss
    assert not other.result_cache_hit and len(other.levels) == 1


def test_batch_matches_single_runs(caches):
    x = small(3, n=2)
    batch = engine.predict(x, "resnet18", num_classes=3, use_result_cache=False, **caches)
    assert isinstance(batch, list) and len(batch) == 2
    for i in range(2):
        one = engine.predict(x[i], "resnet18", num_classes=3, use_result_cache=False, **caches)
        np.testing.assert_allclose(batch[i].logits, one.logits, rtol=1e-4, atol=1e-5)
    listed = engine.predict([x[0], x[1]], "resnet18", num_classes=3, **caches)
    assert [p.indices for p in listed] == [p.indices for p in batch]
    f = engine.features(x, "resnet18", num_classes=3, out_indices=[2], **caches)
    assert f.levels[0]["array"].shape == (2, 128, 8, 8)


def test_multichannel_array_goes_through_preprocess(caches):
    rng = np.random.default_rng(0)
    bands = rng.integers(0, 4000, size=(5, 40, 48), dtype=np.uint16)
    with pytest.raises(ChannelMismatchError):
        engine.predict(bands, "resnet18", **caches)
    p = engine.predict(bands, "resnet18", in_chans=5, num_classes=2, **caches)
    assert p.logits.shape == (2,) and any("5" in a for a in p.adaptations)
    q = engine.predict(bands, "resnet18", in_chans=3, channels=[4, 2, 0], num_classes=2, **caches)
    assert q.logits.shape == (2,)


def test_user_errors(caches):
    x = small()
    with pytest.raises(ConfigError, match="num_classes=0"):
        engine.predict(x, "resnet18", num_classes=0, **caches)
    with pytest.raises(ConfigError, match="top_k"):
        engine.predict(x, "resnet18", top_k=0, **caches)
    with pytest.raises(ConfigError, match="out_indices"):
        engine.features(x, "resnet18", out_indices=[9], **caches)
    with pytest.raises(ConfigError, match="empty list"):
        engine.predict([], "resnet18", **caches)
    with pytest.raises(DeviceError, match="fp16"):
        engine.predict(x, "resnet18", precision="fp16", **caches)


def test_cuda_asked_without_gpu(monkeypatch, caches):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="cuda"):
        engine.predict(small(), "resnet18", device="cuda", **caches)
    assert caches["model_cache"].builds == 0


def test_bf16_on_cpu_close_to_fp32(caches):
    x = small(4)
    torch.manual_seed(0)  # two builds (precision is in the key): the same random weights
    fp32 = engine.predict(x, "resnet18", num_classes=10, **caches)
    torch.manual_seed(0)
    bf16 = engine.predict(x, "resnet18", num_classes=10, precision="bf16", **caches)
    assert caches["model_cache"].builds == 2  # precision is part of the model key
    np.testing.assert_allclose(bf16.logits, fp32.logits, atol=0.25)


def test_request_succeeds_when_result_cache_is_unusable(tmp_path, resnet18_here):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    broken = ResultCache(blocker / "cache")
    p = engine.predict(small(), "resnet18", pretrained=True, result_cache=broken,
                       model_cache=ModelCache())  # fmt: skip
    assert p.logits.shape == (1000,) and not p.result_cache_hit and broken.errors >= 1


def test_results_of_random_weights_are_not_cached(caches, chelsea, monkeypatch):
    """Nothing is seeded: a rebuilt random model answers differently, so its results are not
    kept; with a new head only the predictions are random, the feature maps are cached."""
    x, results, kept = small(6), caches["result_cache"], []
    store = results.set
    monkeypatch.setattr(results, "set", lambda key, *a: kept.append(key) or store(key, *a))
    for _ in range(2):
        p = engine.predict(x, "resnet18", num_classes=3, **caches)
        f = engine.features(x, "resnet18", out_indices=[1], **caches)
        assert not p.result_cache_hit and not f.result_cache_hit
    assert kept == []
    data, image = chelsea
    new_head = {"pretrained": True, "num_classes": 7, "image_bytes": data, **caches}
    for attempt in range(2):
        p = engine.predict(image, "efficientnet_lite0", **new_head)
        f = engine.features(image, "efficientnet_lite0", out_indices=[0], **new_head)
        assert not p.result_cache_hit and f.result_cache_hit == (attempt == 1)
    assert len(kept) == 1


class OomOnce(nn.Module):
    """A tiny classifier whose first ``fail`` forwards raise CUDA out-of-memory."""

    def __init__(self, counter):
        super().__init__()
        self.fc, self.counter = nn.Linear(3, 2), counter
        self.data_config, self.categories, self.adaptations = DataConfig(), None, []
        self.num_classes = 2

    def forward(self, x):
        self.counter["forwards"] += 1
        if self.counter["forwards"] <= self.counter["fail"]:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 GiB")
        return self.fc(x.mean(dim=(2, 3)))


@pytest.mark.parametrize("fail", [1, 5])
def test_out_of_memory_clears_cache_and_retries_once(fail, tmp_path):
    counter = {"forwards": 0, "fail": fail}
    cache = ModelCache(builder=lambda name, **kw: OomOnce(counter), max_models=4)
    cache.get(ModelKey("other"))  # something to evict
    kwargs = {"model_cache": cache, "use_result_cache": False}
    if fail == 1:
        p = engine.predict(small(), "resnet18", **kwargs)  # the builder makes OomOnce
        assert p.logits.shape == (2,) and ModelKey("other") not in cache
        assert cache.builds == 3 and counter["forwards"] == 2  # rebuilt after the eviction
    else:
        with pytest.raises(DeviceError, match="ran out of memory"):
            engine.predict(small(), "resnet18", **kwargs)
        assert counter["forwards"] == 2 and len(cache) == 0


def test_unknown_setting_is_a_config_error(caches):
    with pytest.raises(ConfigError, match="in_chan\\b.*in_chans"):
        engine.predict(small(), "resnet18", in_chan=4, **caches)


def test_incomplete_stored_result_is_a_miss(caches, monkeypatch, resnet18_here):
    x = small(5)
    fresh = engine.predict(x, "resnet18", pretrained=True, **caches)
    results = caches["result_cache"]
    monkeypatch.setattr(results, "get", lambda key: ({"categories": None}, {}))
    again = engine.predict(x, "resnet18", pretrained=True, **caches)
    assert not again.result_cache_hit and again.model_cache_hit
    np.testing.assert_array_equal(again.logits, fresh.logits)
    monkeypatch.setattr(results, "get", lambda key: ({"levels": [{"index": 1}]}, {}))
    f = engine.features(x, "resnet18", pretrained=True, out_indices=[1], **caches)
    assert not f.result_cache_hit and f.levels[0]["channels"] == 64
