"""One timm architecture per timm family (module), through the contracts tests/test_timm.py asks
of its hand-picked sample (``CHECKS``: the classifier; num_classes=7 with in_chans=5;
features_only with in_chans=1 and out_indices=[-1]), pretrained=False.

``FAMILIES`` holds, per timm module, its cheapest architecture by parameter count (counted on
the meta device) and the smallest input it takes among 32, 64 and its own size, with the
``img_size`` that takes it where the model fixes its size at build time. Families whose cheapest
architecture is over ``PARAM_CAP`` are listed in ``OVER_CAP`` and skipped: they cost most of
the time. ``REFUSED`` lists the settings modelkit refuses for a family, with the words of the
refusal (a ModelkitError, never a traceback); a family that starts or stops taking a setting
fails here. Regenerate the tables with ``python tests/test_timm_sweep.py`` (about 8 minutes:
every architecture is counted, each family's pick probed).

Choices made by hand: byoanet's cheapest, halonet_h1 (8.1 M), takes 256 x 256 only and costs
two minutes on two cores; lambda_resnet26t (11.0 M) takes 64 x 64. CrossViT resizes any input
to its own 240 x 240 inside, so its maps are checked at that size.

Measured on the 2-core machine: the slow sweep takes 66 s when idle (500 s beside another test
run); the per-family checks sum to about 4 minutes at worst.
"""

from __future__ import annotations

import sys

import pytest
import timm
import torch

from modelkit.errors import ModelkitError
from tests.test_timm import CHECKS

PARAM_CAP = 50_000_000
# family (timm module) -> (architecture, parameters, create_model kwargs, input size)
FAMILIES = {
    "byoanet": ("lambda_resnet26t", 10_958_272, {"img_size": 64}, 64),
    "byobnet": ("test_byobnet", 456_856, {}, 32),
    "cait": ("cait_xxs24_224", 11_956_264, {"img_size": 32}, 32),
    "coat": ("coat_tiny", 5_498_540, {"img_size": 32}, 32),
    "convit": ("convit_tiny", 5_710_512, {"img_size": 32}, 32),
    "convmixer": ("convmixer_768_32", 21_110_248, {}, 32),
    "convnext": ("test_convnext", 272_128, {}, 32),
    "cpubone": ("cpubone_nano", 6_519_700, {}, 32),
    "crossvit": ("crossvit_tiny_240", 7_014_800, {}, 240),
    "csatv2": ("csatv2", 11_103_444, {}, 64),
    "cspnet": ("cs3darknet_focus_s", 3_274_728, {}, 32),
    "cspnext": ("cspnext_tiny", 2_733_700, {}, 32),
    "davit": ("davit_tiny", 28_360_168, {}, 32),
    "deit": ("deit_tiny_patch16_224", 5_717_416, {"img_size": 32}, 32),
    "densenet": ("densenet121", 7_978_856, {}, 32),
    "dla": ("dla46x_c", 1_068_440, {}, 32),
    "dpn": ("dpn48b", 9_126_226, {}, 32),
    "edgenext": ("edgenext_xx_small", 1_327_216, {}, 32),
    "efficientformer": ("efficientformer_l1", 12_289_928, {}, 224),
    "efficientformer_v2": ("efficientformerv2_s0", 3_600_256, {"img_size": 32}, 32),
    "efficientnet": ("test_efficientnet", 356_196, {}, 32),
    "efficientvim": ("efficientvim_m1", 6_679_458, {}, 32),
    "efficientvit_mit": ("efficientvit_b0", 3_410_008, {}, 32),
    "efficientvit_msra": ("efficientvit_m0", 2_349_436, {}, 32),
    "eva": ("vit_tiny_patch16_dinov3_qkvb", 5_489_664, {}, 32),
    "fasternet": ("fasternet_t0", 3_905_500, {}, 32),
    "fastvit": ("fastvit_t8", 4_026_232, {}, 32),
    "focalnet": ("focalnet_tiny_srf", 28_427_116, {}, 32),
    "gcvit": ("gcvit_xxtiny", 11_995_428, {"img_size": 32}, 32),
    "ghostnet": ("ghostnet_050", 2_587_292, {}, 32),
    "hardcorenas": ("hardcorenas_b", 5_176_544, {}, 32),
    "hgnet": ("hgnetv2_b0", 5_996_550, {}, 32),
    "hiera": ("hiera_tiny_224", 27_910_216, {"img_size": 32}, 32),
    "hieradet_sam2": ("sam2_hiera_tiny", 26_851_008, {}, 32),
    "hrnet": ("hrnet_w18_small", 13_187_464, {}, 32),
    "iformer": ("iformer_t", 2_886_456, {}, 32),
    "inception_next": ("inception_next_atto", 4_156_520, {}, 32),
    "inception_v3": ("inception_v3", 23_834_568, {}, 299),
    "inception_v4": ("inception_v4", 42_679_816, {}, 299),
    "lcnetv2": ("lcnetv2_small", 4_128_552, {}, 32),
    "levit": ("levit_128s", 7_777_058, {"img_size": 32}, 32),
    "lowformer": ("lowformer_b0", 14_100_472, {}, 32),
    "mambaout": ("test_mambaout", 447_560, {}, 32),
    "maxxvit": ("test_coatnet", 575_480, {"img_size": 32}, 32),
    "metaformer": ("poolformerv2_s12", 11_891_712, {}, 32),
    "mlp_mixer": ("gmlp_ti16_224", 5_867_328, {"img_size": 32}, 32),
    "mobilenetv3": ("mobilenetv3_small_050", 1_593_224, {}, 32),
    "mobilevit": ("mobilevit_xxs", 1_272_024, {}, 32),
    "mvitv2": ("mvitv2_tiny", 24_173_320, {}, 32),
    "nest": ("nest_tiny", 17_057_608, {"img_size": 32}, 32),
    "nextvit": ("nextvit_small", 31_763_368, {}, 32),
    "nfnet": ("test_nfnet", 383_080, {}, 32),
    "pit": ("pit_ti_224", 4_847_272, {"img_size": 32}, 32),
    "pvt_v2": ("pvt_v2_b0", 3_666_760, {}, 32),
    "rdnet": ("rdnet_tiny", 23_863_008, {}, 32),
    "regnet": ("regnetx_002", 2_684_792, {}, 32),
    "repghost": ("repghostnet_050", 2_313_968, {}, 32),
    "repvit": ("repvit_m1", 5_485_248, {}, 32),
    "res2net": ("res2next50", 24_671_464, {}, 32),
    "resnest": ("resnest14d", 10_611_688, {}, 32),
    "resnet": ("test_resnet", 469_688, {}, 32),
    "resnetv2": ("resnetv2_18", 11_687_720, {}, 32),
    "rexnet": ("rexnet_100", 4_796_873, {}, 32),
    "selecsls": ("selecsls42", 30_354_952, {}, 32),
    "senet": ("legacy_seresnet18", 11_778_592, {}, 32),
    "sequencer": ("sequencer2d_s", 27_651_688, {}, 32),
    "shvit": ("shvit_s1", 6_330_808, {}, 32),
    "sknet": ("skresnet18", 11_958_056, {}, 32),
    "starnet": ("starnet_s050", 542_728, {}, 32),
    "swiftformer": ("swiftformer_xs", 3_475_360, {}, 32),
    "swin_transformer": ("swin_tiny_patch4_window7_224", 28_288_354, {"img_size": 32}, 32),
    "swin_transformer_v2": ("swinv2_tiny_window16_256", 28_347_154, {"img_size": 32}, 32),
    "swin_transformer_v2_cr": ("swinv2_cr_tiny_224", 28_332_124, {"img_size": 32}, 32),
    "tiny_vit": ("tiny_vit_5m_224", 12_082_725, {}, 32),
    "tnt": ("tnt_s_legacy_patch16_224", 23_755_336, {"img_size": 32}, 32),
    "tresnet": ("tresnet_m", 31_389_032, {}, 32),
    "twins": ("twins_svt_small", 24_060_776, {}, 32),
    "visformer": ("visformer_tiny", 10_321_368, {"img_size": 32}, 32),
    "vision_transformer": ("test_vit", 371_240, {}, 32),
    "vision_transformer_hybrid": ("vit_tiny_r_s16_p8_224", 6_337_704, {"img_size": 32}, 32),
    "vision_transformer_relpos": ("test_vit_relpos", 850_147, {"img_size": 32}, 32),
    "vitamin": ("vitamin_small_224", 22_173_376, {"img_size": 32}, 32),
    "volo": ("volo_d1_224", 26_632_040, {"img_size": 32}, 32),
    "vovnet": ("ese_vovnet19b_slim_dw", 1_897_752, {}, 32),
    "xception": ("legacy_xception", 22_855_952, {}, 32),
    "xception_aligned": ("xception41p", 26_907_752, {}, 32),
    "xcit": ("xcit_nano_12_p8_224", 3_049_016, {}, 32),
}  # fmt: skip
# family -> (its cheapest architecture, parameters): over PARAM_CAP, not swept
OVER_CAP = {
    "beit": ("beit_base_patch16_224", 86_530_984),
    "deepseek_vit": ("deepseek_vit_412m", 411_842_560),
    "gemma4_vit": ("gemma4_vit_167m", 167_364_608),
    "inception_resnet_v2": ("inception_resnet_v2", 55_843_464),
    "mobilenetv5": ("mobilenetv5_base", 82_647_976),
    "naflexvit": ("naflexvit_base_patch16_parfac_gap", 86_461_672),
    "nasnet": ("nasnetalarge", 88_753_150),
    "pnasnet": ("pnasnet5large", 86_057_668),
    "qwen3_vit": ("qwen3_vit_88m", 87_414_528),
    "vgg": ("vgg11", 132_863_336),
    "vision_transformer_sam": ("samvit_base_patch16_224", 86_457_064),
}  # fmt: skip
# (family, check) -> words the ModelkitError says
REFUSED = {
    ("csatv2", "in_chans"): "takes 3 channels \\(R, G, B\\) only: its DCT stem",
    ("csatv2", "features_only"): "takes 3 channels \\(R, G, B\\) only: its DCT stem",
}


def test_every_timm_family_is_swept_or_over_the_cap():
    # a new timm family (or a renamed one) must enter the tables
    assert sorted(FAMILIES.keys() | OVER_CAP.keys()) == sorted(timm.list_modules())
    assert not FAMILIES.keys() & OVER_CAP.keys()
    for family, (arch, params, *_) in FAMILIES.items():
        assert arch in timm.list_models(module=family) and params <= PARAM_CAP, family
    for family, (arch, params) in OVER_CAP.items():
        assert arch in timm.list_models(module=family) and params > PARAM_CAP, family
    assert {family for family, _ in REFUSED} <= FAMILIES.keys()


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_family_contract(family):
    arch, params, kwargs, size = FAMILIES[family]
    assert _count(arch) == params  # the table is this timm's (counted at the default size)
    for setting, check in CHECKS.items():
        words = REFUSED.get((family, setting))
        if words is None:
            check(f"timm/{arch}", kwargs, size)
        else:
            with pytest.raises(ModelkitError, match=words):
                check(f"timm/{arch}", kwargs, size)


# --- regenerating the tables ------------------------------------------------------------------


def _count(arch: str) -> int | None:
    try:
        with torch.device("meta"):
            return sum(p.numel() for p in timm.create_model(arch).parameters())
    except Exception:  # noqa: BLE001 - an architecture that does not build is not a pick
        return None


def _input(arch: str) -> tuple[dict, int] | None:
    """The smallest of 32, 64 and the model's own size that a forward takes (img_size where
    the model fixes its size at build time)."""
    from modelkit import create_model

    for kwargs, size in [({}, 32), ({"img_size": 32}, 32), ({}, 64), ({"img_size": 64}, 64),
                         ({}, 0)]:  # fmt: skip
        try:
            model = create_model(f"timm/{arch}", **kwargs)
            size = size or model.data_config.input_size[-1]
            with torch.no_grad():
                model(torch.randn(2, 3, size, size))
            return kwargs, size
        except Exception:  # noqa: BLE001, S112 - try the next size
            continue
    return None


def regenerate() -> None:
    """Print FAMILIES and OVER_CAP for the installed timm (the choices by hand not applied)."""
    sampled, over = [], []
    for family in timm.list_modules():
        counts = [(n, a) for a in timm.list_models(module=family) if (n := _count(a)) is not None]
        params, arch = min(counts)
        if params > PARAM_CAP:
            over.append(f'    "{family}": ("{arch}", {params:_}),')
        elif (found := _input(arch)) is not None:
            sampled.append(f'    "{family}": ("{arch}", {params:_}, {found[0]!r}, {found[1]}),')
        else:
            sampled.append(f'    # "{family}": ("{arch}", {params:_}): no input size works')
    print("FAMILIES = {", *sampled, "}", "OVER_CAP = {", *over, "}", sep="\n")


if __name__ == "__main__":
    sys.exit(regenerate())
