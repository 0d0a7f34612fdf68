"""Every torchvision family (one architecture each, random weights, a small input): its pooled
features export and pass the probe, or the family is in ``known.STAYS_ON_TORCH`` and falls back
to torch for the reason the table gives. To keep the suite short, the families take turns on
the installed runtimes (sorted by name: the first on ONNX Runtime, the next on OpenVINO, ...);
``MODELKIT_SWEEP_ALL_RUNTIMES=1`` probes every family on every runtime."""

from __future__ import annotations

import os

import pytest
import torch

from modelkit import create_model
from modelkit.models.registry import get_entry
from modelkit.models.torchvision import FAMILIES
from modelkit.runtime.backends import available_backends, compiled_forward
from modelkit.runtime.backends.check import TOLERANCE
from modelkit.runtime.backends.known import STAYS_ON_TORCH
from modelkit.runtime.backends.outputs import OutputModule, parse_output
from modelkit.runtime.backends.store import GraphStore

RUNTIMES = available_backends()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not RUNTIMES, reason="no compiled runtime")]

# family -> (architecture, input size, builder kwargs): the smallest of each family
ARCH = {
    "resnet": ("resnet18", 64, {}), "vgg": ("vgg11", 64, {}), "alexnet": ("alexnet", 64, {}),
    "densenet": ("densenet121", 64, {}), "squeezenet": ("squeezenet1_1", 64, {}),
    "mobilenet_v2": ("mobilenet_v2", 64, {}), "mobilenet_v3": ("mobilenet_v3_small", 64, {}),
    "mnasnet": ("mnasnet0_5", 64, {}), "shufflenet_v2": ("shufflenet_v2_x0_5", 64, {}),
    "efficientnet": ("efficientnet_b0", 64, {}), "regnet": ("regnet_x_400mf", 64, {}),
    "convnext": ("convnext_tiny", 64, {}), "googlenet": ("googlenet", 64, {}),
    "inception_v3": ("inception_v3", 75, {}), "vit": ("vit_b_16", 32, {"image_size": 32}),
    "swin": ("swin_t", 64, {}), "maxvit": ("maxvit_t", 224, {}),
    "efficientnet_lite": ("efficientnet_lite0", 64, {}),
}  # fmt: skip


def test_every_family_is_swept():
    assert set(FAMILIES) | {"efficientnet_lite"} == set(ARCH)
    assert all(get_entry(arch).family.name == fam for fam, (arch, _, _) in ARCH.items())
    assert set(STAYS_ON_TORCH) <= set(ARCH)


@pytest.mark.parametrize("family", sorted(ARCH))
def test_family_exports_and_passes_the_probe_or_is_listed(family, tmp_path):
    arch, size, kwargs = ARCH[family]
    torch.manual_seed(0)
    model = create_model(arch, **kwargs)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        want = OutputModule(model, parse_output("pooled"))(x)
    store = GraphStore(tmp_path)
    turn = sorted(ARCH).index(family) % len(RUNTIMES)
    every = os.environ.get("MODELKIT_SWEEP_ALL_RUNTIMES") == "1"
    for backend in RUNTIMES if every else RUNTIMES[turn : turn + 1]:
        runner = compiled_forward(model, model_id=arch, output="pooled", example=x[:1],
                                  backend=backend, store=store)  # fmt: skip
        with torch.inference_mode():
            got = runner(x)
        if family in STAYS_ON_TORCH:
            assert runner.backend == "torch" and torch.equal(got, want)
            assert any(STAYS_ON_TORCH[family][1].split(":")[0] in n for n in runner.notes)
            continue
        assert runner.backend == backend, runner.notes
        assert float((got - want).abs().max()) <= TOLERANCE * max(float(want.abs().max()), 1e-3)


def test_alexnet_exports_at_its_own_size(tmp_path):
    torch.manual_seed(0)
    model = create_model("alexnet", num_classes=10)
    x = torch.randn(2, 3, 224, 224)
    backend = RUNTIMES[-1]
    runner = compiled_forward(model, model_id="alexnet", output="logits", example=x[:1],
                              backend=backend, store=GraphStore(tmp_path))  # fmt: skip
    with torch.inference_mode():
        got, want = runner(x), model(x)
    assert runner.backend == backend, runner.notes
    assert float((got - want).abs().max()) <= TOLERANCE * float(want.abs().max())
