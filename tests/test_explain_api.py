"""explain()'s contract: the shared model is left exactly as found (no hooks, requires_grad,
.grad), explanations and predictions at once answer as they do alone, a taught head is
explained in its own classes with its own settings, results are cached like predictions,
errors in words."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from torch import nn

from modelkit.errors import ConfigError
from modelkit.explanations.api import Explanation, explain
from modelkit.runtime.engine import predict
from modelkit.runtime.model_cache import ModelCache
from modelkit.runtime.result_cache import ResultCache
from modelkit.teach.head import TrainedHead

NAME = "mobilenet_v3_small"


@pytest.fixture(scope="module")
def cache():
    torch.manual_seed(0)
    return ModelCache()


@pytest.fixture(scope="module")
def x():
    return torch.randn(3, 48, 48, generator=torch.Generator().manual_seed(0))


def _state(model: nn.Module) -> list:
    hooks = [(name, len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks),
              len(m._backward_pre_hooks)) for name, m in model.named_modules()]  # fmt: skip
    params = [(n, p.requires_grad, p.grad is None) for n, p in model.named_parameters()]
    return [hooks, params, model.training]


METHODS = [("bands", {}), ("bands", {"shapley_samples": 1}), ("gradcam", {}),
           ("gradcam", {"layer": 2}), ("integrated_gradients", {"steps": 4})]  # fmt: skip


def test_no_hook_no_requires_grad_no_grad_is_left_on_the_model(cache, x):
    explain(x, NAME, model_cache=cache, use_result_cache=False)
    model = cache.peek(cache.keys()[0])
    before = _state(model)
    assert all(p.requires_grad for p in model.parameters())  # as the factory builds it
    for method, extra in METHODS:
        explain(x, NAME, method=method, model_cache=cache, use_result_cache=False, **extra)
        assert _state(model) == before, method
    global_hooks = torch.nn.modules.module
    assert not global_hooks._global_forward_hooks and not global_hooks._global_backward_hooks


def _fields(out) -> tuple:
    if isinstance(out, Explanation):
        heat = None if out.heatmap is None else out.heatmap.tobytes()
        return out.target_index, out.score, out.band_importance.tobytes(), heat
    return tuple(out.indices), out.logits.tobytes()


def test_explanations_and_predictions_at_once_answer_as_alone(cache, x):
    jobs = [
        lambda: explain(x, NAME, method="gradcam", model_cache=cache, use_result_cache=False),
        lambda: explain(x, NAME, method="bands", model_cache=cache, use_result_cache=False),
        lambda: explain(
            x,
            NAME,
            method="integrated_gradients",
            steps=4,
            model_cache=cache,
            use_result_cache=False,
        ),  # fmt: skip
        lambda: predict(x, NAME, model_cache=cache, use_result_cache=False),
    ]
    alone = [_fields(job()) for job in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(3):
            together = list(pool.map(lambda job: _fields(job()), jobs * 2))
            assert together == alone * 2


def taught_head(num_features: int, classes: list[str], **setup) -> TrainedHead:
    """A head as Teach makes one: classes, a linear layer on pooled features, its settings."""
    torch.manual_seed(1)
    linear = nn.Linear(num_features, len(classes))
    return TrainedHead(
        classes=classes,
        weight=linear.weight.detach().numpy(),
        bias=linear.bias.detach().numpy(),
        setup={"model": NAME, **setup},
    )


def test_a_taught_head_is_explained_with_its_classes(cache, x):
    explain(x, NAME, model_cache=cache, use_result_cache=False)
    model = cache.peek(cache.keys()[0])
    head = taught_head(model.num_features, ["field", "forest", "water"])
    weight_before = head.linear.weight.clone()
    out = explain(x, NAME, head=head, target="forest", method="gradcam", model_cache=cache,
                  use_result_cache=False)  # fmt: skip
    with torch.inference_mode():
        pooled = model.forward_head(model.forward_features(x[None]), pre_logits=True)
        logits = head.linear(pooled)
    assert (out.target_index, out.target_label) == (1, "forest")
    assert out.score == pytest.approx(float(logits[0, 1]), rel=1e-5)
    assert torch.equal(head.linear.weight, weight_before) and head.linear.weight.grad is None
    top = explain(x, NAME, head=head, model_cache=cache, use_result_cache=False)
    assert top.target_index == int(logits.argmax()) and "taught head" in top.notes[0]
    with pytest.raises(ConfigError, match="taught on 7 features"):
        explain(x, NAME, head=taught_head(7, ["a", "b"]), model_cache=cache)
    with pytest.raises(ConfigError, match="must be a TrainedHead or its .safetensors file"):
        explain(x, NAME, head=object(), model_cache=cache)
    # the head's settings win; what the call gave beside them is named in the notes
    other = explain(x, "resnet18", head=head, model_cache=cache, use_result_cache=False)
    assert other.score == pytest.approx(top.score, rel=1e-5)
    assert "The head was taught with model 'mobilenet_v3_small'" in other.notes[0]


def test_results_are_cached_like_predictions(tmp_path):
    from pathlib import Path

    from modelkit.images.read import read_image

    path = Path(__file__).resolve().parents[1] / "assets" / "chelsea.png"
    image = read_image(path.read_bytes(), "chelsea.png")
    results, models = ResultCache(tmp_path / "results"), ModelCache()
    small = image.data[:, ::4, ::4].copy()
    kw = dict(method="gradcam", model_cache=models, result_cache=results)
    first = explain(small, "efficientnet_lite0", pretrained=True, **kw)
    again = explain(small, "efficientnet_lite0", pretrained=True, **kw)
    assert not first.result_cache_hit and again.result_cache_hit
    assert np.array_equal(first.heatmap, again.heatmap) and again.notes == first.notes
    assert (again.target_label, again.score) == (first.target_label, first.score)
    random = [explain(small, "efficientnet_lite0", pretrained=False, **kw) for _ in range(2)]
    assert not any(r.result_cache_hit for r in random)  # random weights: never kept


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "lime"}, "method='lime' is not known"),
        ({"baseline": "noise"}, "baseline='noise' is not known"),
        ({"target": 5000}, "out of range"),
        ({"target": "zebra crossing"}, "not one of this model's class names"),
        ({"layer": "layer9"}, "not a step of mobilenet_v3"),
        ({"layer": 40}, "out of range"),
        ({"steps": 1, "method": "integrated_gradients"}, "steps=1"),
        ({"num_classes": 0}, "no classifier"),
    ],
)
def test_mistakes_are_answered_in_words(cache, x, kwargs, message):
    kwargs.setdefault("method", "gradcam")
    with pytest.raises(ConfigError, match=message):
        explain(x, NAME, model_cache=cache, use_result_cache=False, **kwargs)


def test_a_batch_is_refused_and_the_public_name_is_the_function(x):
    with pytest.raises(ConfigError, match="one image at a time"):
        explain([x, x], NAME)
    import modelkit.explanations.bands  # noqa: F401 - importing a submodule must not hide the function

    assert callable(modelkit.explain) and modelkit.Explanation is Explanation
    assert "explain" in modelkit.__all__
