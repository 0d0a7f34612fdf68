"""train_head / TrainedHead / load_head on real labelled images (scikit-image's faces and
textures) and a generated multi-band set; controls: shuffled labels, views kept in one fold."""

from __future__ import annotations

import contextlib
import io
import re

import numpy as np
import pytest
import torch
from teach_data import lfw, one_band_set, png, texture_tiles, texture_zip

from modelkit import TrainedHead, load_head, train_head
from modelkit.errors import ConfigError, WeightsLoadError
from modelkit.images.read import read_image
from modelkit.runtime.engine import Prediction
from modelkit.runtime.model_cache import ModelCache
from modelkit.runtime.result_cache import ResultCache
from modelkit.teach.examples import digest_groups, examples_from_zip
from modelkit.teach.fit import fit_probe, split
from modelkit.teach.snippet import head_snippet

MODEL = "efficientnet_lite0"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return ResultCache(tmp_path_factory.mktemp("teach-results"))


@pytest.fixture(scope="module")
def faces(results):
    x, labels = lfw(per_class=20)
    return x, labels, train_head(list(x), labels, MODEL, result_cache=results)


def within_noise_of(accuracy: float, chance: float, n: int, sigmas: float = 2.5) -> bool:
    return abs(accuracy - chance) <= sigmas * np.sqrt(chance * (1 - chance) / n)


def test_faces_are_told_from_non_faces_with_out_of_fold_numbers(faces):
    x, labels, head = faces
    assert isinstance(head, TrainedHead) and head.classes == ["face", "other"]
    assert head.cv_accuracy >= 0.9 and head.balanced_accuracy >= 0.9
    assert head.chance == 0.5 and head.p_value < 1e-4
    assert head.confusion.shape == (2, 2) and head.confusion.sum() == 40
    assert head.confusion.trace() == round(head.cv_accuracy * 40)
    assert head.per_class["face"]["count"] == 20 and head.per_class["other"]["count"] == 20
    assert len(head.fold_accuracies) == 5 and len(head.misclassified) == 40 - head.confusion.trace()
    assert not any("chance" in w for w in head.warnings)
    # the head is one linear layer on the pooled features: in_features = lite0's 1280
    assert head.linear.in_features == 1280 and head.linear.out_features == 2
    assert head.setup["model"] == MODEL and head.setup["data_config"]["mean"] == [0.5] * 3


def test_prediction_has_the_type_of_predict_and_the_taught_labels(faces, results):
    x, labels, head = faces
    out = head.predict(list(x[[0, 39]]), top_k=2, result_cache=results)
    assert all(isinstance(p, Prediction) for p in out)
    assert [p.labels[0] for p in out] == ["face", "other"]
    assert out[0].result_cache_hit  # the embeddings of training images were cached
    single = head.predict(x[0], top_k=1, result_cache=results)
    assert isinstance(single, Prediction) and single.labels == ["face"]
    # linear on the pooled features gives the logits (views: none)
    np.testing.assert_allclose(sum(single.probabilities), single.probabilities[0])
    logits = head.linear(torch.from_numpy(np.zeros(1280, np.float32))).numpy()
    np.testing.assert_allclose(logits, head.bias, atol=1e-6)


def test_shuffled_labels_are_at_chance_and_said_so(faces, results):
    x, labels, _ = faces
    rng = np.random.default_rng(1)
    accuracies = []
    for _ in range(3):
        shuffled = list(rng.permutation(labels))
        head = train_head(list(x), shuffled, MODEL, result_cache=results)
        assert head.fit["embedding_cache_hits"] == 40  # teaching again costs no embedding
        accuracies.append(head.cv_accuracy)
    assert within_noise_of(float(np.mean(accuracies)), 0.5, 3 * 40), accuracies
    assert max(accuracies) < 0.8


def test_views_of_one_image_never_split_across_folds():
    # 40 images, 8 near-identical views each, random labels: nothing to learn
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, 1, 200)).astype(np.float32)
    vectors = base + 0.01 * rng.normal(size=(40, 8, 200)).astype(np.float32)
    y = np.repeat([0, 1], 20)
    grid = (1.0, 100.0)
    kept = fit_probe(vectors, y, grid=grid)
    assert within_noise_of(kept.cv_accuracy if hasattr(kept, "cv_accuracy") else
                           float((kept.oof_proba.argmax(1) == y).mean()), 0.5, 40)  # fmt: skip
    # the control: the same views as separate images leak (a view's twin is in training)
    leaked = fit_probe(vectors.reshape(320, 1, 200), np.repeat(y, 8), grid=grid)
    assert float((leaked.oof_proba.argmax(1) == np.repeat(y, 8)).mean()) > 0.9


def test_equal_files_share_a_fold():
    blobs = [b"a", b"b", b"a", b"c", b"d", b"b", b"e", b"f", b"g", b"h"]
    groups = digest_groups(blobs, len(blobs))
    assert groups[0] == groups[2] and groups[1] == groups[5]
    fold_of = split(np.array([0, 1] * 5), 2, groups)
    assert fold_of[0] == fold_of[2] and fold_of[1] == fold_of[5]


def test_a_band_only_the_head_can_see_reaches_95_percent(results):
    x, labels = one_band_set(per_class=16)
    head = train_head(list(x), labels, MODEL, in_chans=5, augment="flips", result_cache=results)
    assert head.cv_accuracy >= 0.95, head.fit
    assert head.setup["views"] == "flips" and head.setup["in_chans"] == 5
    # the control: without that band the classes cannot be told apart
    blind = train_head(list(x[:, [0, 1, 2, 4]]), labels, MODEL, in_chans=4, result_cache=results)
    assert within_noise_of(blind.cv_accuracy, 0.5, 32) and blind.p_value > 0.01
    assert any("within noise of chance" in w for w in blind.warnings)


@pytest.fixture(scope="module")
def textures(results):
    examples = examples_from_zip(texture_zip(per_class=5), "textures.zip")
    head = train_head(examples.images, examples.labels, MODEL, image_bytes=examples.image_bytes,
                      names=examples.names, result_cache=results)  # fmt: skip
    return examples, head


def test_a_zip_of_texture_folders_teaches_three_classes(textures):
    examples, head = textures
    assert head.classes == ["brick", "grass", "gravel"]
    assert head.setup["in_chans"] == 1  # gray tiles: the model takes one channel
    assert examples.names[0] == "textures/brick/brick_0.png"
    assert head.cv_accuracy >= 0.85 and head.confusion.sum() == 15
    assert not any("Few examples" in w for w in head.warnings)  # 5 a class is not few


def test_saved_and_loaded_head_predicts_identically(textures, tmp_path, results):
    examples, head = textures
    path = head.save(tmp_path / "head.safetensors")
    again = load_head(path)
    assert again.classes == head.classes and again.setup == head.setup
    assert again.cv_accuracy == head.cv_accuracy and np.array_equal(again.confusion, head.confusion)
    a = head.predict(examples.images[:3], top_k=3, use_result_cache=False)
    b = again.predict(examples.images[:3], top_k=3, use_result_cache=False)
    for p, q in zip(a, b, strict=True):
        assert p.labels == q.labels
        np.testing.assert_allclose(p.probabilities, q.probabilities, atol=1e-5)
    assert load_head(path.read_bytes()).classes == head.classes


def test_the_snippet_reproduces_the_probabilities(textures, tmp_path):
    examples, head = textures
    cls, name, tile = next(t for t in texture_tiles(per_class=7) if t[1] == "grass_6.png")
    (tmp_path / "tile.png").write_bytes(png(tile))  # a tile the head never saw
    head.save(tmp_path / "head.safetensors")
    code = head_snippet(head.setup, str(tmp_path / "head.safetensors"), str(tmp_path / "tile.png"))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "snippet", "exec"), {})
    printed = dict(line.split(": ") for line in out.getvalue().strip().splitlines())
    expected = head.predict(read_image(png(tile), "tile.png"), top_k=3, use_result_cache=False)
    assert list(printed) == expected.labels
    np.testing.assert_allclose([float(v) for v in printed.values()], expected.probabilities,
                               atol=1e-5)  # fmt: skip


def test_random_weights_are_allowed_and_said_loudly(results):
    x, labels = lfw(per_class=6, size=32)
    head = train_head(list(x), labels, MODEL, pretrained=False, result_cache=results)
    assert head.warnings[0].startswith("RANDOM WEIGHTS")
    assert head.setup["random_weights"] == ["all weights"]


@pytest.mark.parametrize(
    "labels, phrase",
    [(["a"] * 4, "Only one class ('a')"), (["a", "a", "a", "b"], "'b' has one example"),
     (["a", "b"], "4 images were given with 2 labels"), (["a", "a", "b", None], "Labels must")],
)  # fmt: skip
def test_examples_that_cannot_teach_are_refused_before_any_model_runs(labels, phrase):
    images = [np.zeros((3, 8, 8), np.uint8)] * 4

    def no_build(name, **kwargs):
        raise AssertionError("a model was built")

    with pytest.raises(ConfigError, match=re.escape(phrase)):
        train_head(images, labels, MODEL, model_cache=ModelCache(builder=no_build))


def test_bad_settings_and_head_files_are_named(tmp_path):
    images = [np.zeros((3, 8, 8), np.uint8)] * 4
    with pytest.raises(ConfigError, match="augment='all'"):
        train_head(images, ["a", "a", "b", "b"], MODEL, augment="all")
    with pytest.raises(WeightsLoadError, match="'junk.safetensors'.*too short"):
        load_head(b"junk", name="junk.safetensors")
    (tmp_path / "other.safetensors").write_bytes(
        __import__("safetensors.torch").torch.save({"w": torch.zeros(2)})
    )
    with pytest.raises(WeightsLoadError, match="holds no modelkit head"):
        load_head(tmp_path / "other.safetensors")
