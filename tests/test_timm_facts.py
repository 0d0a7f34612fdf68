"""Facts shipped for the pinned timm (parameters, feature levels) equal a real build, cover the
whole zoo, and let search show a timm model's size before its card was ever opened."""

from __future__ import annotations

import gzip
import json

import pytest
import timm
import torch

from modelkit.app import form
from modelkit.models import timm_source
from modelkit.models.timm_source import SHIPPED_FACTS, levels_of, timm_version


def _shipped() -> dict:
    data = json.loads(gzip.decompress(SHIPPED_FACTS.read_bytes()))
    assert data["timm"] == timm_version()
    return data["facts"]


def test_shipped_facts_cover_every_architecture():
    facts = _shipped()
    assert sorted(facts) == sorted(timm.list_models())
    failed = sorted(a for a, f in facts.items() if "error" in f)
    assert not failed, failed  # every architecture builds on the meta device (hybrids too)
    assert all(f["params"] > 0 and f["levels"] for f in facts.values())


@pytest.mark.parametrize("arch", ["resnet18", "convnext_atto", "mobilenetv3_small_050",
                                  "vit_tiny_patch16_224", "vit_tiny_r_s16_p8_224"])  # fmt: skip
def test_shipped_facts_equal_a_real_build(arch):
    torch.manual_seed(0)
    model = timm.create_model(arch)
    facts = _shipped()[arch]
    assert facts["params"] == sum(p.numel() for p in model.parameters())
    real = [{k: v for k, v in lv.items() if k != "num_chs"} for lv in levels_of(model)]
    assert facts["levels"] == real


def test_search_shows_timm_sizes_without_building(monkeypatch, tmp_path):
    monkeypatch.setenv("MODELKIT_CACHE_DIR", str(tmp_path))  # no facts computed on this machine
    monkeypatch.setattr(timm_source, "_FACTS", None)
    monkeypatch.setattr(timm_source, "_SHIPPED", None)
    timm_source._facts_path.cache_clear()
    rows = form.search_models("convnext_atto", source="timm", sort="size")
    assert rows and all(r["params_m"] is not None for r in rows)
    atto = {r["name"]: r["params_m"] for r in rows}["timm/convnext_atto"]
    assert 3.0 < atto < 4.0  # 3.7 M
    sizes = [r["params_m"] for r in form.search_models("timm/resnet*", source="timm", sort="size")]
    assert len(sizes) > 20 and sizes == sorted(sizes)
    assert not (tmp_path / "timm").exists() or not any((tmp_path / "timm").glob("facts-*"))
    timm_source._facts_path.cache_clear()
