"""Explanations (public as ``modelkit.explain``; the package is named apart so that it never
shadows the function): which bands and which regions drive a model's answer.

api        explain(image, model, *, method, target, head, layer, baseline, ...) -> Explanation
bands      per-band importance: captum FeatureAblation (one feature per band), Shapley option
cam        Grad-CAM for every family (CNN, ViT tokens, Swin/MaxViT layouts), no hooks
gradients  integrated gradients with the completeness check
heatmap    maps placed back on the image at its resolution, bounded memory
bandsets   Sentinel-2 / Landsat-8 band names and wavelengths
scoring    the explained score (a logit of the model or of a taught head)
"""
