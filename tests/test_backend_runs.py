"""The backend as a run setting: predict, features, embeddings, batch, train_head and band
importance give torch's numbers on a compiled runtime, say who served, and never serve what
they cannot (gradients, the GPU, int8 on torch); "auto" answers with torch first; a process
that ends while "auto" compiles ends cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import modelkit
from modelkit import ConfigError, RunSettings
from modelkit.images.read import read_image
from modelkit.runtime.backends import available_backends
from modelkit.runtime.model_cache import ModelCache

ROOT = Path(__file__).resolve().parents[1]
CAT = read_image((ROOT / "assets" / "chelsea.png").read_bytes(), "chelsea.png")
COMPILED = available_backends()
pytestmark = pytest.mark.skipif(not COMPILED, reason="no compiled runtime is installed")
NO_CACHE = {"use_result_cache": False}


@pytest.fixture(scope="module")
def cache():
    return ModelCache()


@pytest.mark.parametrize("backend", COMPILED)
def test_predict_and_features_match_torch_and_say_who_served(backend, cache):
    settings = RunSettings("efficientnet_lite0", pretrained=True, device="cpu")
    ref = modelkit.predict(CAT, settings.replace(backend="torch"), model_cache=cache, **NO_CACHE)
    out = modelkit.predict(CAT, settings.replace(backend=backend), model_cache=cache, **NO_CACHE)
    assert ref.backend == "torch" and out.backend == backend and out.labels == ref.labels
    np.testing.assert_allclose(out.probabilities, ref.probabilities, atol=1e-4)
    assert out.labels[0] == "tiger cat"  # the app's default answer, unchanged
    maps = modelkit.features(CAT, settings.replace(backend=backend), out_indices=(1, 4),
                             model_cache=cache, **NO_CACHE)  # fmt: skip
    torch_maps = modelkit.features(CAT, settings.replace(backend="torch"), out_indices=(1, 4),
                                   model_cache=cache, **NO_CACHE)  # fmt: skip
    assert maps.backend == backend
    for a, b in zip(maps.levels, torch_maps.levels, strict=True):
        scale = float(np.abs(b["array"]).max())
        assert np.abs(a["array"] - b["array"]).max() <= 1e-3 * scale  # float16-rounded maps


def test_embeddings_and_a_taught_head_on_a_compiled_runtime(cache):
    backend = COMPILED[0]
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (3, 48, 48), dtype=np.uint8) for _ in range(6)]
    settings = RunSettings("efficientnet_lite0", pretrained=True, device="cpu")
    ref = modelkit.embeddings(images, settings.replace(backend="torch"), views="flips",
                              model_cache=cache, **NO_CACHE)  # fmt: skip
    out = modelkit.embeddings(images, settings.replace(backend=backend), views="flips",
                              model_cache=cache, **NO_CACHE)  # fmt: skip
    assert out.backend == backend
    scale = float(np.abs(ref.vectors).max())
    assert np.abs(out.vectors - ref.vectors).max() <= 1e-4 * scale
    head = modelkit.train_head(images, ["a", "b"] * 3, settings.replace(backend=backend),
                               folds=2, model_cache=cache, **NO_CACHE)  # fmt: skip
    assert "backend" not in head.setup  # where it runs is the user's choice, not the head's


def test_band_importance_runs_on_the_compiled_runtime_and_gradients_on_torch(cache):
    backend = COMPILED[0]
    settings = RunSettings("efficientnet_lite0", pretrained=True, device="cpu")
    small = CAT.data[:, ::4, ::4].copy()
    ref = modelkit.explain(small, settings.replace(backend="torch"), model_cache=cache,
                           **NO_CACHE)  # fmt: skip
    out = modelkit.explain(small, settings.replace(backend=backend), model_cache=cache,
                           **NO_CACHE)  # fmt: skip
    np.testing.assert_allclose(out.band_importance, ref.band_importance, atol=1e-3)
    cam = modelkit.explain(small, settings.replace(backend=backend), method="gradcam",
                           model_cache=cache, **NO_CACHE)  # fmt: skip
    assert cam.heatmap is not None  # gradients: torch, whatever the backend


def test_auto_answers_with_torch_first_then_the_fastest(cache):
    settings = RunSettings("efficientnet_lite0", pretrained=True, device="cpu", backend="auto")
    x = torch.from_numpy(np.zeros((1, 3, 224, 224), np.float32))
    first = modelkit.predict(x, settings, model_cache=cache, **NO_CACHE)
    assert first.backend == "torch"
    model = cache.peek(settings.model_key())
    (runner,) = [r for r in model.modelkit.runners.values() if r.requested == "auto"]
    assert runner.wait(300)  # the background compile and timing
    again = modelkit.predict(x, settings, model_cache=cache, **NO_CACHE)
    assert again.backend in ("torch", *COMPILED)  # the one that timed fastest here
    assert any(note.startswith("auto timed batch 1") for note in again.notes)
    np.testing.assert_allclose(again.probabilities, first.probabilities, atol=1e-4)


def test_what_cannot_run_compiled_is_refused_in_words():
    with pytest.raises(ConfigError, match="int8' runs on a compiled backend"):
        RunSettings("resnet18", precision="int8", backend="torch")
    with pytest.raises(ConfigError, match="backend='fast' is not known"):
        RunSettings("resnet18", backend="fast")
    assert not RunSettings("resnet18", backend="auto").compiles(torch.device("cuda"))
    assert not RunSettings("resnet18", backend="auto", precision="bf16").compiles(
        torch.device("cpu"))  # fmt: skip
    assert RunSettings("resnet18", backend=None).backend == os.environ["MODELKIT_BACKEND"]


@pytest.mark.slow  # a child process (imports torch)
def test_a_process_that_ends_while_auto_compiles_ends_cleanly(tmp_path):
    code = (
        "import numpy as np, modelkit\n"
        "x = np.zeros((3, 32, 32), np.uint8)\n"
        "print(modelkit.predict(x, 'resnet18', backend='auto', use_result_cache=False).backend)\n"
    )
    env = {**os.environ, "MODELKIT_CACHE_DIR": str(tmp_path)}
    env.pop("MODELKIT_BACKEND")  # the default: auto
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]  # no abort from a runtime's threads
    assert out.stdout.split() == ["torch"]
