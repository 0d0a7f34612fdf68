"""Pretrained weights: find them (in a fixed order), load them safely, adapt first conv and head.

Sources, first found wins: ``pretrained_cfg_overlay["state_dict"]``, ``pretrained_cfg_overlay
["file"]``, ``checkpoint_path``, ``PretrainedCfg.file`` (e.g. inside an installed package), the
torch hub cache (``torch.hub.get_dir()/checkpoints/<hub_filename>``), then the URL. Downloads
happen only here, only on request, never when ``MODELKIT_OFFLINE=1``.
"""

from __future__ import annotations

import math
import os
import pickle
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from modelkit.config import PretrainedCfg
from modelkit.errors import ConfigError, WeightsLoadError, WeightsUnavailableError
from modelkit.models import weights_store

CONNECT_TIMEOUT_S = 1.0  # no network -> an error within a second
DOWNLOAD_TIMEOUT_S = 10.0  # socket timeout per read once connected; one try, no retry loop


def offline() -> bool:
    return os.environ.get("MODELKIT_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def hub_cache_path(cfg: PretrainedCfg) -> Path | None:
    if not cfg.hub_filename:
        return None
    return Path(torch.hub.get_dir()) / "checkpoints" / cfg.hub_filename


def weights_on_disk(cfg: PretrainedCfg) -> bool:
    if cfg.file and Path(cfg.file).is_file():
        return True
    cached = hub_cache_path(cfg)
    return bool(cached and cached.is_file())


def load_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from .pth/.pt/.bin (torch.load, weights_only) or .safetensors."""
    path = Path(path)
    if not path.is_file():
        raise WeightsUnavailableError(f"Weights file {path} does not exist; check the path.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file as load_safetensors

            sd = load_safetensors(str(path), device="cpu")
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, not a checkpoint, or pickled code
        text = str(exc).strip()
        if "unsupported GLOBAL" in text:  # torch's weights_only refusal of a code reference
            detail = "it holds Python objects besides tensors, which are never loaded"
        elif isinstance(exc, pickle.UnpicklingError):  # torch's text would advise unsafe loading
            detail = "it is not a PyTorch or safetensors checkpoint"
        else:
            detail = f"{type(exc).__name__}: {text.splitlines()[0][:160] if text else ''}"
        raise WeightsLoadError(
            f"Could not read weights file {path}: {detail}. The file may be corrupt, incomplete "
            "or not a plain checkpoint: delete it and get it again."
        ) from exc
    return unwrap_state_dict(sd, str(path))


def unwrap_state_dict(sd, where: str) -> dict[str, torch.Tensor]:
    """Accept ``{"state_dict": ...}``/``{"model": ...}`` wrappers and DataParallel's ``module.``."""
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise WeightsLoadError(f"{where} does not hold a state dict of tensors.")
    if sd and all(k.startswith("module.") for k in sd):
        out = type(sd)((k[len("module.") :], v) for k, v in sd.items())
        if hasattr(sd, "_metadata"):
            out._metadata = sd._metadata
        sd = out
    return sd


def download(url: str, dest: Path, expected_mb: float | None = None) -> None:
    """One plain download into ``dest`` (via a temporary file), with a short socket timeout.
    Its size (Content-Length, else ``expected_mb``) is checked against the server's limits
    (``weights_store.reserve``) before any byte is written, and what arrives is counted."""
    parts = urllib.parse.urlsplit(url)
    try:  # a fast probe, so that a machine without network fails at once, not after a minute
        socket.create_connection(
            (parts.hostname, parts.port or 443), timeout=CONNECT_TIMEOUT_S
        ).close()
    except OSError as exc:
        raise WeightsUnavailableError(
            f"Could not reach {parts.hostname} to download {url} ({exc}). Download it elsewhere "
            f"and put it at {dest}, or pass checkpoint_path=... to a copy you have."
        ) from exc
    tmp = None
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as r:
            length = r.headers.get("Content-Length", "")
            size = int(length) if length.isdigit() else None
            size = size if size is not None or not expected_mb else int(expected_mb * 1e6)
            with weights_store.reserve(size, dest.parent, f"The weights file {dest.name}"):
                dest.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".partial")
                with os.fdopen(fd, "wb") as out:
                    while chunk := r.read(1 << 20):
                        out.write(chunk)
                        if size is not None and out.tell() > size:
                            raise OSError(f"the server sent more than the {size} bytes announced")
                os.replace(tmp, dest)
                weights_store.record(dest)
    except (TimeoutError, urllib.error.URLError, OSError) as exc:
        raise WeightsUnavailableError(
            f"Could not download {url} ({exc}). Put the file at {dest} by hand, or pass "
            "checkpoint_path=... to a copy you have."
        ) from exc
    finally:
        if tmp and os.path.exists(tmp):
            os.remove(tmp)


def find_state_dict(
    cfg: PretrainedCfg,
    checkpoint_path: str | os.PathLike | None = None,
    overlay: dict | None = None,
) -> tuple[dict[str, torch.Tensor], str]:
    """The checkpoint's state dict and a plain-words note of where it came from."""
    overlay = overlay or {}
    if overlay.get("state_dict") is not None:
        return unwrap_state_dict(overlay["state_dict"], "pretrained_cfg_overlay['state_dict']"), (
            "an in-memory state dict"
        )
    for path, what in ((overlay.get("file"), "file"), (checkpoint_path, "checkpoint")):
        if path:
            return load_file(path), f"{what} {path}"
    if cfg.file:
        # the note is shown to app users: a file name, not the server's folders
        return load_file(cfg.file), f"{cfg.source or 'local'} file {Path(cfg.file).name}"
    cached = hub_cache_path(cfg)
    if cached and cached.is_file():
        with weights_store.in_use(cached):  # not evicted by another download while read
            return load_file(cached), f"torch hub cache file {cached.name}"
    if not cfg.url:
        raise WeightsUnavailableError(
            f"No pretrained weights are known for {cfg.name}"
            + (" (its weight package is not installed)." if cfg.source == "package" else ".")
            + " Pass checkpoint_path=... to a weights file, or use pretrained=False."
        )
    if offline():
        raise WeightsUnavailableError(
            f"Weights for {cfg.name} are not on this machine and downloads are off "
            f"(MODELKIT_OFFLINE=1). Download {cfg.url} elsewhere and put it at {cached}."
        )
    download(cfg.url, cached, cfg.file_size_mb)
    with weights_store.in_use(cached):
        return load_file(cached), f"downloaded {cfg.url}"


# --- first conv -------------------------------------------------------------------------------


def adapt_input_conv(
    weight: torch.Tensor,
    in_chans: int,
    mode: str = "repeat",
    rgb_channels: Sequence[int] | None = None,
) -> tuple[torch.Tensor, str]:
    """First-conv filters (O, S, kh, kw) for ``in_chans`` inputs, and how they were made.

    repeat: 1 channel sums the source filters; N tiles them, cuts to N and scales by S/N (so a
    constant image gives the same response). rgb: the S=3 source filters go on ``rgb_channels``,
    zeros elsewhere. random: fresh filters (the conv's default init) with the source filters
    kept on the first min(S, N) channels.
    """
    source = weight.shape[1]
    if in_chans == source and mode != "rgb":
        return weight, "unchanged"
    if mode == "rgb":
        if source != 3:
            raise ConfigError(
                f"in_chans_init='rgb' needs a 3-channel checkpoint; this one has {source} channels."
            )
        new = weight.new_zeros(weight.shape[0], in_chans, *weight.shape[2:])
        for i, c in enumerate(rgb_channels):
            new[:, c] = weight[:, i]
        return new, f"pretrained R, G, B filters on channels {tuple(rgb_channels)}, zeros elsewhere"
    if mode == "random":
        new = torch.empty(weight.shape[0], in_chans, *weight.shape[2:], dtype=weight.dtype)
        nn.init.kaiming_uniform_(new, a=math.sqrt(5))  # nn.Conv2d's own default
        keep = min(source, in_chans)
        new[:, :keep] = weight[:, :keep]
        return new, f"first {keep} channels pretrained, the rest random"
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True), "summed over the input channels"
    repeats = math.ceil(in_chans / source)
    new = weight.repeat(1, repeats, 1, 1)[:, :in_chans] * (source / in_chans)
    return new, "repeated and scaled"


def set_conv_in_chans(conv: nn.Module, weight: torch.Tensor) -> None:
    """Give a conv new filters with another input channel count, in place (keeps its class)."""
    if not isinstance(conv, nn.Conv2d) or conv.groups != 1:
        raise ConfigError(f"Cannot change input channels of {type(conv).__name__}.")
    conv.in_channels = weight.shape[1]
    conv.weight = nn.Parameter(
        weight.to(conv.weight.dtype), requires_grad=conv.weight.requires_grad
    )


# --- classifier head --------------------------------------------------------------------------


def head_note(path: str, num_classes: int) -> str:
    if num_classes == 0:
        return f"{path}: removed (num_classes=0), the model gives pooled features"
    return f"{path}: new head for {num_classes} classes"


def _trunc(std: float, bound: float | None = None):
    def init(m: nn.Module) -> None:
        a = -bound if bound else -2.0 * std
        nn.init.trunc_normal_(m.weight, std=std, a=a, b=-a)
        nn.init.zeros_(m.bias)

    return init


def _normal(std: float):
    def init(m: nn.Module) -> None:
        nn.init.normal_(m.weight, 0, std)
        nn.init.zeros_(m.bias)

    return init


def _uniform_out(m: nn.Module) -> None:
    bound = 1.0 / math.sqrt(m.weight.shape[0])
    nn.init.uniform_(m.weight, -bound, bound)
    nn.init.zeros_(m.bias)


def _kaiming_sigmoid(m: nn.Module) -> None:
    nn.init.kaiming_uniform_(m.weight, mode="fan_out", nonlinearity="sigmoid")
    nn.init.zeros_(m.bias)


# How each family initialises a new classifier (torchvision's own init code, per family).
HEAD_INITS = {
    "default": lambda m: None,  # nn.Linear's own reset_parameters
    "zero_bias": lambda m: nn.init.zeros_(m.bias),
    "zeros": lambda m: (nn.init.zeros_(m.weight), nn.init.zeros_(m.bias)),
    "normal_0.01": _normal(0.01),
    "normal_0.02": _normal(0.02),
    "trunc_normal_0.02": _trunc(0.02),
    "trunc_normal_0.01": _trunc(0.01, bound=2.0),
    "trunc_normal_0.1": _trunc(0.1, bound=2.0),
    "uniform_out": _uniform_out,
    "kaiming_sigmoid": _kaiming_sigmoid,
}


def new_head(in_features: int, num_classes: int, init: str, conv: bool = False) -> nn.Module:
    """A fresh classifier (Linear, or 1x1 conv for SqueezeNet) for ``num_classes`` outputs."""
    if num_classes == 0:
        return nn.Identity()
    if conv:
        head = nn.Conv2d(in_features, num_classes, kernel_size=1)
    else:
        head = nn.Linear(in_features, num_classes)
    HEAD_INITS[init](head)
    return head


def head_in_features(head: nn.Module) -> int:
    return head.in_channels if isinstance(head, nn.Conv2d) else head.in_features
