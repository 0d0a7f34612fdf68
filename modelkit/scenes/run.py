"""The one place where a scene map meets the run settings (model, weights, channels, scaling,
device, precision): it builds the model through the runtime's model cache and runs it. The rest
of ``scenes`` sees a ``ModelRun`` and never a setting. (The main developer's ``RunSettings``
replaces ``RunSpec.settings``: only this module changes.)

    RunSpec(model, settings, channels, scaling, views, head_bytes)   picklable, for Ray actors
    RunSpec.build(model_cache=None) -> ModelRun
    plan_run(scene_bands, band_names, model, head, *, <settings>) -> (RunSpec, notes)

A ``ModelRun`` answers a batch of preprocessed tiles (``tiles``) or a map of pooled features
(``pooled``) with class probabilities, and pooled features when asked. With a taught head the
answer is the head's (its views averaged, as ``TrainedHead.predict``); without one, the model's
own classifier (softmax in float64, as ``predict``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import torch

from modelkit.errors import ChannelMismatchError, ConfigError, ModelkitError
from modelkit.models.factory import random_parts
from modelkit.runtime.device import autocast, prepare_input, resolve_device, resolve_precision
from modelkit.runtime.embeddings import VIEW_SETS, pooled
from modelkit.runtime.run import default_model_cache, failure, model_key
from modelkit.teach.head import TrainedHead, load_head

KEY_SETTINGS = ("pretrained", "in_chans", "in_chans_init", "rgb_channels", "device", "precision")


@dataclass
class RunSpec:
    """Everything that rebuilds the same model run in another process."""

    model: str
    settings: dict  # keyword arguments of runtime.run.model_key
    channels: tuple[int, ...] | None
    scaling: str
    views: str = "none"
    head_bytes: bytes | None = None
    head_digest: str | None = None  # the head's weights, classes and setup (its file's bytes
    # are not stable: safetensors writes its metadata in any order)

    def build(self, model_cache=None) -> ModelRun:
        key = model_key(self.model, **self.settings)
        cache = default_model_cache(model_cache)
        try:
            net, _ = cache.get(key)
        except ModelkitError:
            raise
        except Exception as error:  # a model that fails to build is named in words
            raise failure(key, error, "build") from error
        head = load_head(self.head_bytes) if self.head_bytes is not None else None
        device = torch.device(key.device)
        return ModelRun(self, net, head, device, resolve_precision(key.precision, device))


@dataclass
class ModelRun:
    spec: RunSpec
    model: torch.nn.Module
    head: TrainedHead | None
    device: torch.device
    dtype: torch.dtype | None
    views: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.views = VIEW_SETS[self.spec.views] if self.head is not None else ("identity",)

    @property
    def data_config(self):
        return self.model.data_config

    @property
    def classes(self) -> list[str]:
        if self.head is not None:
            return list(self.head.classes)
        cats = getattr(self.model, "categories", None)
        return list(cats) if cats else [f"class {i}" for i in range(self.model.num_classes)]

    @contextlib.contextmanager
    def running(self):
        with torch.inference_mode(), autocast(self.device, self.dtype):
            yield

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        return prepare_input(x, self.device)

    def tiles(self, x: torch.Tensor, want_features: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities (N, K), pooled features (N, D) or None) of preprocessed tiles."""
        with self.running():
            x = self.to_device(x)
            if self.head is not None:
                return self._head_answer(pooled(self.model, x, self.views), want_features)
            return self._own_answer(self.model.forward_features(x), want_features)

    def pooled(
        self, maps: torch.Tensor, want_features: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The same answer from feature maps already pooled per tile: (N, V, Df) -> as tiles."""
        n, v, d = maps.shape
        with self.running():
            flat = maps.reshape(n * v, d, 1, 1)
            if self.head is not None:
                vectors = self.model.forward_head(flat, pre_logits=True).reshape(n, v, -1)
                return self._head_answer(vectors, want_features)
            return self._own_answer(flat, want_features)

    def _head_answer(self, vectors: torch.Tensor, want_features: bool):
        vectors = vectors.float().cpu().numpy()
        _, probs = self.head.probabilities(vectors)
        return probs.astype(np.float32), vectors.mean(1) if want_features else None

    def _own_answer(self, maps: torch.Tensor, want_features: bool):
        logits = self.model.forward_head(maps).float().cpu().double()
        probs = torch.softmax(logits, -1).numpy().astype(np.float32)
        feats = None
        if want_features:
            feats = self.model.forward_head(maps, pre_logits=True).float().cpu().numpy()
        return probs, feats

    def random_parts(self) -> list[str]:
        s = self.spec.settings
        return random_parts(
            self.spec.model,
            bool(s.get("pretrained")),
            None if self.head else getattr(self.model, "num_classes", None),
            s.get("in_chans"),
            s.get("in_chans_init", "repeat"),
        )


def _head_of(head) -> TrainedHead:
    return head if isinstance(head, TrainedHead) else load_head(head)


def _bands_tag(model: str, names: list[str] | None) -> str:
    """``bands`` on a scene whose band names a known band list spells: ``bands.<tag>``."""
    from modelkit.models.band_roles import canonical
    from modelkit.models.bands import TAGS

    if model != "bands" or not names:
        return model
    canon = [canonical(n) for n in names]
    for tag, (bands, _) in TAGS.items():
        if canon == [canonical(b) for b in bands]:
            return f"bands.{tag}"
    return model


def plan_run(
    scene_bands: int,
    band_names: list[str] | None,
    model: str | None,
    head,
    *,
    pretrained: bool,
    in_chans: int | None,
    channels,
    scaling: str,
    device: str,
    precision: str,
) -> tuple[RunSpec, list[str]]:
    """The RunSpec for a scene with ``scene_bands`` bands, and notes for the map."""
    notes: list[str] = []
    if head is not None:
        head = _head_of(head)
        if model is not None and model != head.model:
            raise ConfigError(
                f"The head was taught on '{head.model}', not on model='{model}'; "
                "leave model empty to use the head's own."
            )
        setup = head.setup
        want = setup.get("channels") or None
        count = len(want) if want else setup.get("in_chans")
        misfit = max(want) >= scene_bands if want else bool(count) and count != scene_bands
        if misfit:
            what = f"channels {list(want)}" if want else f"{count} bands"
            raise ChannelMismatchError(
                f"The head was taught on {what}, but the scene has {scene_bands} bands. Map a "
                f"scene with the same bands as the head's examples, or teach the head again "
                f"on {scene_bands}-band tiles."
            )
        settings = {k: setup[k] for k in KEY_SETTINGS if setup.get(k) is not None}
        settings |= {"device": device, "precision": precision}
        digest = hashlib.sha256(head.weight.tobytes() + head.bias.tobytes() + json.dumps(
            [head.classes, head.setup], sort_keys=True).encode()).hexdigest()  # fmt: skip
        spec = RunSpec(
            head.model,
            settings,
            tuple(want) if want else None,
            setup.get("scaling") or "auto",
            setup.get("views") or "none",
            head.to_bytes(),
            digest,
        )
        return spec, notes
    if model is None:
        raise ConfigError(
            "Give a model (e.g. model='bands' or 'efficientnet_lite0') or a taught "
            "head (head='head.safetensors')."
        )
    chosen = tuple(int(c) for c in channels) if channels else None
    if chosen and (min(chosen) < 0 or max(chosen) >= scene_bands):
        raise ConfigError(
            f"channels={list(chosen)} names bands the scene does not have (it "
            f"has {scene_bands}, numbered 0 to {scene_bands - 1})."
        )
    names = [band_names[c] for c in chosen] if chosen and band_names else band_names
    name = _bands_tag(model, names)
    if name != model:
        notes.append(f"The scene's band names match '{name}': its spectral indices are used.")
    count = in_chans or (len(chosen) if chosen else scene_bands)
    settings = {
        "pretrained": pretrained,
        "in_chans": count,
        "device": device,
        "precision": precision,
    }
    resolve_device(device)
    return RunSpec(name, settings, chosen, scaling), notes
