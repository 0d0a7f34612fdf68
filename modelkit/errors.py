"""Errors a user can cause. Each message says what is wrong, where, and what to do instead.

The app shows ``str(error)`` for any ``ModelkitError``; anything else is a bug.
"""


class ModelkitError(Exception):
    """Base of every error a user can cause; its message is meant for a person, not a programmer."""


class ConfigError(ModelkitError, ValueError):
    """A setting has a value that cannot work (names the argument, the value, the fix)."""


class UnknownModelError(ConfigError):
    """A model name that is not registered; the message suggests the closest names."""


class WeightsUnavailableError(ModelkitError):
    """Pretrained weights are not on this machine and cannot be downloaded (offline, or no URL)."""


class WeightsLoadError(ModelkitError):
    """A weights file exists but cannot be read or does not fit the model (corrupt, wrong model)."""


class ImageReadError(ModelkitError):
    """An uploaded file cannot be read as an image: corrupt, unsupported, unsafe or too large."""


class ChannelMismatchError(ConfigError):
    """The image's channel count and the model's ``in_chans`` disagree."""


class DeviceError(ConfigError):
    """A device or precision that this machine cannot provide (e.g. CUDA where there is none)."""


class LimitError(ModelkitError):
    """A request over a limit the server's deployer set (``modelkit.hosting``): the message says
    the limit, how far over it the request is, and what to do instead."""


class ModelTooLargeError(LimitError):
    """A model that needs more memory to build than this server allows (``MODELKIT_MAX_MODEL_MB``);
    refused before anything is downloaded or allocated."""


class DiskLimitError(LimitError):
    """A download or an export that would take more disk than this server allows."""
