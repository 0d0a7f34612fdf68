"""modelkit: a timm-style image model factory over torch + torchvision, for any channel count.

Every public name is re-exported here lazily: ``import modelkit`` costs nothing, and reading a
file (``modelkit.read_image``) never imports torch. Where each name lives, in data-flow order:

    images   read_image, ImageArray, ReadLimits, preprocess
    models   list_models, list_pretrained, list_families, list_sources, is_model,
             get_pretrained_cfg,
             register_model, create_model, model_info, adapt_input_conv, FeatureInfo
    runtime  RunSettings, predict, features, embeddings
    teach    train_head, load_head, TrainedHead, suggest
    explanations explain, Explanation
    batches  batch, BatchResult (python -m modelkit batch: the command line), similar
    scenes   map_scene, SceneMap (python -m modelkit map: the command line)
    errors   ModelkitError and its family;  config  PretrainedCfg, DataConfig
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "ModelkitError": "modelkit.errors",
    "ChannelMismatchError": "modelkit.errors",
    "ConfigError": "modelkit.errors",
    "DeviceError": "modelkit.errors",
    "ImageReadError": "modelkit.errors",
    "UnknownModelError": "modelkit.errors",
    "WeightsLoadError": "modelkit.errors",
    "WeightsUnavailableError": "modelkit.errors",
    "LimitError": "modelkit.errors",
    "ModelTooLargeError": "modelkit.errors",
    "DiskLimitError": "modelkit.errors",
    "DataConfig": "modelkit.config",
    "PretrainedCfg": "modelkit.config",
    "ImageArray": "modelkit.images.limits",
    "ReadLimits": "modelkit.images.limits",
    "read_image": "modelkit.images.read",
    "preprocess": "modelkit.images.preprocess",
    "list_models": "modelkit.models.registry",
    "list_pretrained": "modelkit.models.registry",
    "list_families": "modelkit.models.registry",
    "list_sources": "modelkit.models.registry",
    "is_model": "modelkit.models.registry",
    "get_pretrained_cfg": "modelkit.models.registry",
    "register_model": "modelkit.models.registry",
    "create_model": "modelkit.models.factory",
    "model_info": "modelkit.models.info",
    "adapt_input_conv": "modelkit.models.pretrained",
    "FeatureInfo": "modelkit.models.features",
    "RunSettings": "modelkit.runtime.settings",
    "predict": "modelkit.runtime.engine",
    "features": "modelkit.runtime.engine",
    "embeddings": "modelkit.runtime.embeddings",
    "train_head": "modelkit.teach.train",
    "load_head": "modelkit.teach.head",
    "TrainedHead": "modelkit.teach.head",
    "suggest": "modelkit.teach.suggest",
    "batch": "modelkit.batches.job",
    "BatchResult": "modelkit.batches.job",
    "map_scene": "modelkit.scenes.api",
    "SceneMap": "modelkit.scenes.scene_map",
    "similar": "modelkit.batches.similar",
    "explain": "modelkit.explanations.api",
    "Explanation": "modelkit.explanations.api",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'modelkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return __all__
