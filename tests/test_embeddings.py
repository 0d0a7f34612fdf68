"""embeddings(): the pooled features the classifier sees, per view, batched and cached per image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelkit import ConfigError, create_model, embeddings, predict
from modelkit.runtime.embeddings import VIEW_SETS, pooled
from modelkit.runtime.model_cache import ModelCache
from modelkit.runtime.result_cache import ResultCache


@pytest.fixture()
def images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (3, 48, 40), dtype=np.uint8) for _ in range(5)]


@pytest.fixture()
def caches(tmp_path):
    return dict(model_cache=ModelCache(), result_cache=ResultCache(tmp_path / "results"))


def test_the_classifier_on_an_embedding_gives_the_prediction(images, caches):
    out = embeddings(images[:2], "efficientnet_lite0", pretrained=True, **caches)
    assert out.vectors.shape == (2, 1, 1280) and out.vectors.dtype == np.float32
    assert out.random_weights == [] and "weights loaded" in out.adaptations[0]
    head = create_model("efficientnet_lite0", pretrained=True).get_classifier()
    for image, vector in zip(images[:2], out.vectors, strict=True):
        logits = head(torch.from_numpy(vector[0])).detach().numpy()
        expected = predict(image, "efficientnet_lite0", pretrained=True, use_result_cache=False)
        np.testing.assert_allclose(logits, expected.logits, atol=1e-4)


def test_batches_and_cache_give_the_same_vectors_and_only_new_images_cost(images, caches):
    first = embeddings(images[:3], "efficientnet_lite0", pretrained=True, batch_size=2, **caches)
    seen = []
    again = embeddings(images, "efficientnet_lite0", pretrained=True, batch_size=4,
                       progress=lambda *counts: seen.append(counts), **caches)  # fmt: skip
    assert again.cache_hits.tolist() == [True, True, True, False, False]
    assert np.array_equal(again.vectors[:3], first.vectors)  # exact: float32 kept as computed
    alone = embeddings(images[3:4], "efficientnet_lite0", pretrained=True,
                       use_result_cache=False, model_cache=caches["model_cache"])  # fmt: skip
    np.testing.assert_allclose(again.vectors[3], alone.vectors[0], atol=1e-5)
    assert seen[0] == (3, 5) and seen[-1] == (5, 5)


def test_views_are_flips_and_turns_of_the_input(caches):
    square = np.random.default_rng(1).random((3, 40, 40)).astype(np.float32)
    out = embeddings([square], "resnet18", pretrained=False, views="dihedral", **caches)
    assert out.vectors.shape == (1, 8, 512) and out.views == VIEW_SETS["dihedral"]
    assert out.random_weights == ["all weights"] and not out.cache_hits.any()
    model = caches["model_cache"].get(next(iter(caches["model_cache"].keys())))[0]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        views = pooled(model, x, ("identity", "hflip", "rot90"))
        direct = model.forward_head(model.forward_features(x.flip(-1)), pre_logits=True)
    assert views.shape == (2, 3, 512)
    torch.testing.assert_close(views[:, 1], direct, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(views[:, 0], views[:, 2])  # a turn is another input


def test_random_weights_are_never_cached(images, caches):
    embeddings(images[:1], "resnet18", pretrained=False, **caches)
    again = embeddings(images[:1], "resnet18", pretrained=False, **caches)
    assert not again.cache_hits.any()


@pytest.mark.parametrize(
    "kwargs, phrase",
    [({"views": "all"}, "views='all'"), ({"batch_size": 0}, "batch_size=0"),
     ({"image_bytes": [b"a"]}, "1 byte strings were given for 2 images")],
)  # fmt: skip
def test_bad_arguments_are_named(images, kwargs, phrase):
    with pytest.raises(ConfigError, match=phrase):
        embeddings(images[:2], "resnet18", **kwargs)
