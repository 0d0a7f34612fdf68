"""The model-size guard: a model too large for the server is refused in words before any
download or build, quickly and without allocating it; search and the model card say so."""

from __future__ import annotations

import time

import numpy as np
import psutil
import pytest
import torch
from torch import nn

from modelkit import create_model, list_models, predict
from modelkit.app import form
from modelkit.errors import ModelkitError, ModelTooLargeError
from modelkit.hosting import default_model_mb
from modelkit.models import registry, size_guard
from modelkit.models.info import model_info, model_summaries
from modelkit.models.registry import get_entry, register_model

GIANT = "timm/vit_7b_patch16_dinov3"
SPACE_MB = 12288  # what a 16 GB Space allows one build by default (see test_space_default)


@pytest.fixture
def space_limit(monkeypatch):
    monkeypatch.setenv("MODELKIT_MAX_MODEL_MB", str(SPACE_MB))


def refused(call) -> tuple[str, float, int]:
    """(message, seconds, RSS growth in bytes) of a call that must raise ModelTooLargeError."""
    process = psutil.Process()
    before, started = process.memory_info().rss, time.perf_counter()
    with pytest.raises(ModelTooLargeError) as caught:
        call()
    return str(caught.value), time.perf_counter() - started, process.memory_info().rss - before


@pytest.mark.parametrize("way", ["predict", "create_model", "create_model pretrained"])
def test_the_7b_request_is_refused_in_words_quickly_without_memory(space_limit, way):
    list_models()  # the registry (timm's index) is loaded once per process, before the baseline
    image = np.zeros((3, 32, 32), np.float32)
    calls = {
        "predict": lambda: predict(image, GIANT, pretrained=False, use_result_cache=False),
        "create_model": lambda: create_model(GIANT),
        # refused before the download is even looked for (offline would say "downloads are off")
        "create_model pretrained": lambda: create_model(GIANT, pretrained=True),
    }
    message, seconds, growth = refused(calls[way])
    assert message.startswith(f"{GIANT} has 6.7 billion parameters, about 26.9 GB in memory")
    allowed = SPACE_MB * 2**20 / size_guard.BUILD_FACTOR / 1e9
    assert f"this server allows models up to {allowed:.1f} GB" in message
    assert "Run it on a machine with more memory, or pick a smaller model." in message
    assert seconds < 5 and growth < 200 * 2**20, (seconds, growth / 2**20)


def test_the_estimate_is_parameters_times_bytes_times_the_factor(monkeypatch):
    params = size_guard.known_params("resnet50")
    assert params == sum(p.numel() for p in create_model("resnet50").parameters())
    peak = size_guard.build_peak_bytes(params)
    assert peak == int(params * 4 * size_guard.BUILD_FACTOR)
    just_enough = -(-peak // 2**20)  # MB, rounded up
    assert size_guard.too_large("resnet50", params, just_enough) == ""
    assert "resnet50 has 25.6 million parameters" in size_guard.too_large(
        "resnet50", params, just_enough - 1
    )
    monkeypatch.setenv("MODELKIT_MAX_MODEL_MB", str(just_enough - 1))
    with pytest.raises(ModelTooLargeError, match="about 102 MB in memory"):
        create_model("resnet50")
    monkeypatch.setenv("MODELKIT_MAX_MODEL_MB", str(just_enough))
    assert isinstance(create_model("resnet50"), nn.Module)


def test_space_default_refuses_the_giants_and_allows_a_billion(monkeypatch):
    """On a 16 GB Space (2 GB model cache) a build may take 12 GB: the 7B and 3B models are
    refused, a one-billion-parameter ViT (4 GB) is allowed."""
    monkeypatch.setenv("SPACE_ID", "someone/modelkit")
    monkeypatch.delenv("MODELKIT_MAX_MODEL_MB", raising=False)
    monkeypatch.setattr("modelkit.hosting.machine_memory_mb", lambda: 16384)
    assert default_model_mb(space=True) == SPACE_MB
    facts = {n: size_guard.known_params(n) for n in
             (GIANT, "timm/aimv2_3b_patch14_224", "timm/vit_giant_patch14_224")}  # fmt: skip
    assert facts["timm/vit_giant_patch14_224"] > 1e9
    assert size_guard.too_large(GIANT, facts[GIANT])
    assert size_guard.too_large("timm/aimv2_3b_patch14_224", facts["timm/aimv2_3b_patch14_224"])
    assert size_guard.too_large("x", facts["timm/vit_giant_patch14_224"]) == ""


class Huge(nn.Module):
    """A deployer's own model: 2.5 billion parameters (10 GB) in one layer."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(50_000, 50_000)


@pytest.fixture
def huge_registered():
    list_models()  # the built-in sources first, so that they do not replace it
    register_model("huge_test_net", get_entry("resnet18").family, Huge)
    yield
    registry._REGISTRY.pop("huge_test_net")


def test_a_deployers_own_model_is_sized_on_the_meta_device(monkeypatch, huge_registered):
    monkeypatch.setenv("MODELKIT_MAX_MODEL_MB", str(SPACE_MB))
    process = psutil.Process()
    before = process.memory_info().rss
    assert size_guard.known_params("huge_test_net") == 50_000 * 50_001 + 8 * 3 * 9 + 8
    with pytest.raises(ModelTooLargeError, match="huge_test_net has 2.5 billion parameters"):
        create_model("huge_test_net")
    assert process.memory_info().rss - before < 200 * 2**20


def test_an_unknown_name_still_gets_its_own_error():
    with pytest.raises(ModelkitError, match="Unknown model") as caught:
        create_model("no_such_model_at_all")
    assert not isinstance(caught.value, ModelTooLargeError)


def test_search_and_the_card_mark_what_this_server_cannot_run(monkeypatch):
    monkeypatch.setenv("MODELKIT_MAX_MODEL_MB", "200")  # resnet18 fits (117 MB), resnet152 not
    rows = {r["name"]: r for r in form.search_models("resnet1")}
    assert rows["resnet152"]["weights"] == form.TOO_LARGE
    assert "resnet152 has 60.2 million parameters" in rows["resnet152"]["too_large"]
    assert rows["resnet18"]["too_large"] == "" and rows["resnet18"]["weights"] != form.TOO_LARGE
    table = {row[0]: row for row in form.search_rows(rows.values())}
    assert table["resnet152"][4] == form.TOO_LARGE
    summary = model_summaries(["resnet152", "timm/resnet152"])
    assert all(s["too_large"] for s in summary)
    card = form.model_card(model_info("resnet152"))
    assert "**⚠ Too large for this server.** resnet152 has 60.2 million parameters" in card
    assert "Too large" not in form.model_card(model_info("resnet18"))


def test_the_guard_allocates_nothing_for_a_real_build(monkeypatch):
    """The guard's own lookups build nothing real: a model that fits is built once."""
    calls = []
    real = torch.nn.Linear.__init__

    def counting(self, *args, **kwargs):
        calls.append(args)
        real(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Linear, "__init__", counting)
    monkeypatch.setenv("MODELKIT_MAX_MODEL_MB", str(10**8))
    size_guard.check_model_size(GIANT)  # the shipped facts: nothing built, even on meta
    size_guard.check_model_size("resnet50")
    assert calls == []
