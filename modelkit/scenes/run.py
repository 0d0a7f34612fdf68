"""The one place where a scene map meets the run settings (``RunSettings``: model, weights,
channels, scaling, device, precision): it builds the model through the runtime's model cache
and runs it. The rest of ``scenes`` sees a ``ModelRun``, and reads the settings only through it.

    RunSpec(settings, views, head_bytes, head_digest)        picklable, for Ray actors
    RunSpec.build(model_cache=None) -> ModelRun
    plan_run(scene_bands, band_names, settings, head) -> (RunSpec, notes)

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

from modelkit.errors import ChannelMismatchError, ConfigError
from modelkit.models.bands import bands_name
from modelkit.runtime.device import autocast, prepare_input, resolve_precision
from modelkit.runtime.embeddings import VIEW_SETS, pooled
from modelkit.runtime.serving import server
from modelkit.runtime.settings import RunSettings
from modelkit.teach.head import TrainedHead, as_head


@dataclass
class RunSpec:
    """Everything that rebuilds the same model run in another process."""

    settings: RunSettings
    views: str = "none"
    head_bytes: bytes | None = None
    head_digest: str | None = None  # the head's weights, classes and setup (its file's bytes
    # are not stable: safetensors writes its metadata in any order)

    @property
    def model(self) -> str:
        return self.settings.name

    @property
    def channels(self) -> tuple[int, ...] | None:
        return self.settings.channels

    @property
    def scaling(self) -> str:
        return self.settings.scaling

    def build(self, model_cache=None) -> ModelRun:
        net, _ = self.settings.build(model_cache)
        key = self.settings.model_key()
        head = as_head(self.head_bytes) if self.head_bytes is not None else None
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
        self.backend, self.notes = "torch", []  # who served the passes (serve), and why

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

    def serve(self, output: str, x: torch.Tensor):
        """``output`` ("logits", "pooled", "trunk") of a batch, from torch or a compiled graph
        where the run's settings ask for one (runtime.serving); inside ``running()``."""
        key = self.spec.settings.model_key()
        serve, runner = server(self.spec.settings, key, self.model, output, x)
        out = serve(x)
        if runner is not None:
            self.backend = runner.backend
            self.notes += [n for n in runner.notes if n not in self.notes]
        return out

    def tiles(self, x: torch.Tensor, want_features: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities (N, K), pooled features (N, D) or None) of preprocessed tiles."""
        with self.running():
            x = self.to_device(x)
            if self.head is not None:
                vectors = pooled(self.model, x, self.views, lambda t: self.serve("pooled", t))
                return self._head_answer(vectors, want_features)
            if self.spec.settings.compiles(self.device) and not hasattr(self.model, "grid_sums"):
                logits = self.serve("logits", x).float().cpu().double()
                probs = torch.softmax(logits, -1).numpy().astype(np.float32)
                feats = self.serve("pooled", x).float().cpu().numpy() if want_features else None
                return probs, feats
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
        return self.spec.settings.random_parts(with_head=self.head is None)


def plan_run(scene_bands: int, band_names: list[str] | None, settings: RunSettings,
             head) -> tuple[RunSpec, list[str]]:  # fmt: skip
    """The RunSpec for a scene with ``scene_bands`` bands, and notes for the map. With a head,
    its settings win (``TrainedHead.settings_for``: what they override is named in a note)."""
    if head is not None:
        head = as_head(head)
        settings, notes = head.settings_for(settings)
        want = settings.channels
        count = len(want) if want else settings.in_chans
        misfit = max(want) >= scene_bands if want else bool(count) and count != scene_bands
        if misfit:
            what = f"channels {list(want)}" if want else f"{count} bands"
            raise ChannelMismatchError(
                f"The head was taught on {what}, but the scene has {scene_bands} bands. Map a "
                f"scene with the same bands as the head's examples, or teach the head again "
                f"on {scene_bands}-band tiles."
            )
        digest = hashlib.sha256(head.weight.tobytes() + head.bias.tobytes() + json.dumps(
            [head.classes, head.setup], sort_keys=True).encode()).hexdigest()  # fmt: skip
        views = head.setup.get("views") or "none"
        return RunSpec(settings, views, head.to_bytes(), digest), notes
    notes: list[str] = []
    chosen = settings.channels
    if chosen and max(chosen) >= scene_bands:
        raise ConfigError(
            f"channels={list(chosen)} names bands the scene does not have (it "
            f"has {scene_bands}, numbered 0 to {scene_bands - 1})."
        )
    names = [band_names[c] for c in chosen] if chosen and band_names else band_names
    name = bands_name(names) if settings.model == "bands" else settings.model
    if name != settings.model:
        notes.append(f"The scene's band names match '{name}': its spectral indices are used.")
        # the tag names the bands (there are no weights to load): kept whatever 'pretrained'
        settings = settings.replace(model=name, pretrained=True)
    count = settings.in_chans or (len(chosen) if chosen else scene_bands)
    settings = settings.replace(in_chans=count)
    settings.model_key()  # a device this machine lacks is refused before any work
    return RunSpec(settings), notes
