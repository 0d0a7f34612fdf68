"""Explain: which bands and which regions drive a model's answer.

api        explain(image, model, *, method, target, head, layer, baseline, ...) -> Explanation
bands      per-band importance: captum FeatureAblation (one feature per band), Shapley option
cam        Grad-CAM for every family (CNN, ViT tokens, Swin/MaxViT layouts), no hooks
gradients  integrated gradients with the completeness check
heatmap    maps placed back on the image at its resolution, bounded memory
bandsets   Sentinel-2 / Landsat-8 band names and wavelengths
scoring    the explained score (a logit of the model or of a taught head)
"""

from __future__ import annotations

import sys
import types


class _CallableModule(types.ModuleType):
    """``modelkit.explain`` names both this package and the function: importing a submodule
    (``modelkit.explain.api``) makes Python set ``modelkit.explain`` to this package, so the
    package answers a call as the function does."""

    def __call__(self, *args, **kwargs):
        from modelkit.explain.api import explain

        return explain(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
