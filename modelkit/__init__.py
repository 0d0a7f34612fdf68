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

__version__ = "0.1.0"

__all__ = [
    "ChannelMismatchError",
    "ConfigError",
    "DataConfig",
    "DeviceError",
    "ImageReadError",
    "ModelkitError",
    "PretrainedCfg",
    "UnknownModelError",
    "WeightsLoadError",
    "WeightsUnavailableError",
    "__version__",
]
