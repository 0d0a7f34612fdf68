"""A taught head for a batch: a TrainedHead (from Teach) or the path of its .safetensors file.

The protocol used here: ``.classes`` (names, in the order of the logits), ``.linear`` (a torch
``nn.Linear`` on the pooled features, the scaler folded in) and ``.setup`` (a dict: the base
model's name and tag, pretrained, in_chans, channels, scaling, ...). The head decides how its
features are made, so its setup fills the batch's settings; a setting given beside it that
disagrees is refused rather than silently producing features the head was never taught on.
"""

from __future__ import annotations

import os
from pathlib import Path

from modelkit.errors import ConfigError
from modelkit.teach.head import ENGINE_SETTINGS, load_head


def load(head):
    """The head object: as given, or read from a .safetensors path with Teach's loader."""
    if isinstance(head, str | os.PathLike):
        path = Path(head)
        if not path.is_file():
            raise ConfigError(f"The head file '{path}' does not exist; give the .safetensors "
                              "file that Teach saved.")  # fmt: skip
        return load_head(path)
    for needed in ("classes", "linear", "setup"):
        if not hasattr(head, needed):
            raise ConfigError(f"head= must be a TrainedHead or a head file; a "
                              f"{type(head).__name__} has no '{needed}'.")  # fmt: skip
    return head


def base_model(head) -> str:
    """The model name (with its tag) that the head was taught on: Teach's ``setup["model"]``."""
    name = str(dict(head.setup).get("model") or "")
    if not name:
        raise ConfigError("The head does not say which model it was taught on (setup['model']).")
    return name


def merge(head, model: str | None, settings: dict) -> tuple[str, dict]:
    """(model name, settings) for a run with this head; conflicts are refused."""
    name = base_model(head)
    if model and model != name and model != name.split(".")[0]:
        raise ConfigError(f"The head was taught on '{name}', not '{model}': use --model {name} "
                          "(or leave the model to the head).")  # fmt: skip
    merged = dict(settings)
    for key in ENGINE_SETTINGS:  # the head's setup keys that are settings of the run
        if key not in head.setup or head.setup[key] is None:
            continue
        value = head.setup[key]
        value = tuple(value) if isinstance(value, list) else value
        given = merged.get(key)
        given = tuple(given) if isinstance(given, list) else given
        if given is not None and given != value:
            raise ConfigError(f"The head was taught with {key}={value!r}, but {key}={given!r} "
                              f"was given; leave {key} out (the head sets it).")  # fmt: skip
        merged[key] = value
    return name, merged
