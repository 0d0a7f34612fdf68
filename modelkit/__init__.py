"""modelkit: a timm-style image model factory over torch + torchvision, for any channel count."""

from modelkit.config import DataConfig, PretrainedCfg
from modelkit.errors import (
    ChannelMismatchError,
    ConfigError,
    DeviceError,
    ImageReadError,
    ModelkitError,
    UnknownModelError,
    WeightsLoadError,
    WeightsUnavailableError,
)
from modelkit.factory import create_model, model_info
from modelkit.features import FeatureInfo
from modelkit.pretrained import adapt_input_conv
from modelkit.registry import (
    get_pretrained_cfg,
    is_model,
    list_families,
    list_models,
    list_pretrained,
    register_model,
)

__version__ = "0.1.0"

__all__ = [
    "ChannelMismatchError",
    "ConfigError",
    "DataConfig",
    "DeviceError",
    "FeatureInfo",
    "ImageReadError",
    "ModelkitError",
    "PretrainedCfg",
    "UnknownModelError",
    "WeightsLoadError",
    "WeightsUnavailableError",
    "__version__",
    "adapt_input_conv",
    "create_model",
    "get_pretrained_cfg",
    "is_model",
    "list_families",
    "list_models",
    "list_pretrained",
    "model_info",
    "register_model",
]
