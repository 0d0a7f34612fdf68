"""Weights from the Hugging Face Hub (timm's, and TorchGeo's sensor weights), through
huggingface_hub into its own cache. ``MODELKIT_OFFLINE=1`` also turns the Hub offline
(``HF_HUB_OFFLINE``): a missing file fails at once, naming the file and where it goes.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import torch

from modelkit.config import PretrainedCfg
from modelkit.errors import WeightsLoadError, WeightsUnavailableError
from modelkit.models.pretrained import find_state_dict, load_file, offline, unwrap_state_dict
from modelkit.models.timm_source import hub_cache

TIMM_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm's Hub repos hold
_RESOLVE = re.compile(r"^https://(?:hf\.co|huggingface\.co)/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


def hub_location(cfg: PretrainedCfg) -> tuple[str, str | None, tuple[str, ...]] | None:
    """(repo, revision, candidate files) of a cfg's Hub weights, or None when not on the Hub."""
    if cfg.hf_hub_id:
        files = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else TIMM_FILES
        return cfg.hf_hub_id, None, files
    match = _RESOLVE.match(cfg.url or "")
    if match:
        return match.group(1), match.group(2), (match.group(3),)
    return None


def _check_hash(path: str, filename: str) -> None:
    """torch.hub's convention: ``name-<sha256 prefix>.pth``; checked once, after a download."""
    match = re.search(r"-([0-9a-f]{8,})\.\w+$", filename)
    if not match:
        return
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    if not digest.startswith(match.group(1)):
        os.remove(path)
        raise WeightsLoadError(
            f"The downloaded {filename} has sha256 {digest[:12]}..., not {match.group(1)}...: it "
            "is corrupt or not the published file, and was deleted. Try again."
        )


def hub_file(cfg: PretrainedCfg) -> str:
    """The local path of a cfg's Hub weights, downloading into the Hub cache when allowed."""
    repo, revision, files = hub_location(cfg)
    if offline():
        os.environ["HF_HUB_OFFLINE"] = "1"  # before huggingface_hub reads its settings
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    cache = str(hub_cache())  # read now: HF_HUB_CACHE / HF_HOME may change after import
    for name in files:
        cached = try_to_load_from_cache(repo, name, cache_dir=cache, revision=revision)
        if isinstance(cached, str):
            return cached
    page = f"https://huggingface.co/{repo}"
    if offline():
        raise WeightsUnavailableError(
            f"Weights for {cfg.name} are not on this machine and downloads are off "
            f"(MODELKIT_OFFLINE=1): {files[0]} of {page} is missing. On a machine with network, "
            f"run `hf download {repo} {files[0]}` and copy its Hugging Face cache to "
            f"{cache} (or set HF_HUB_CACHE), or download the file and pass "
            "checkpoint_path=<the file>."
        )
    for name in files:
        try:
            path = hf_hub_download(repo, name, revision=revision, cache_dir=cache)
        except LocalEntryNotFoundError as exc:  # no network
            raise WeightsUnavailableError(
                f"Could not download {name} of {page} ({type(exc).__name__}). Download it "
                f"elsewhere and pass checkpoint_path=<the file>, or copy the Hugging Face cache "
                f"to {cache}."
            ) from None
        except EntryNotFoundError:
            continue  # the repo has the other file name
        except OSError as exc:  # HTTP errors, disk full
            raise WeightsUnavailableError(
                f"Could not download {name} of {page}: {str(exc)[:200]}. Try again later, or "
                "pass checkpoint_path=<a copy of the file>."
            ) from None
        _check_hash(path, name)
        return path
    raise WeightsUnavailableError(f"{page} has none of the files {', '.join(files)}.")


def timm_weights(
    cfg: PretrainedCfg, checkpoint_path=None, sources: dict | None = None
) -> tuple[dict[str, torch.Tensor] | str, str]:
    """Where a timm model's weights are: a local file path (timm reads it, weights only), or a
    state dict (an in-memory overlay, or a plain URL download); and where, in words."""
    sources = sources or {}
    if sources.get("state_dict") is None:
        for path, what in ((sources.get("file"), "file"), (checkpoint_path, "checkpoint")):
            if path:
                return _readable(path), f"{what} {path}"
        if cfg.file:
            return _readable(cfg.file), f"{cfg.source or 'local'} file {Path(cfg.file).name}"
        if hub_location(cfg):
            path = hub_file(cfg)
            return path, f"the Hugging Face Hub ({hub_location(cfg)[0]}, {Path(path).name})"
    return find_state_dict(cfg, checkpoint_path, sources)


def _readable(path) -> str:
    if not Path(path).is_file():
        load_file(path)  # raises the plain-words "does not exist" error
    return str(path)


def weight_shapes(weights: dict[str, torch.Tensor] | str) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of a state dict or a weights file, without reading the whole file."""
    if isinstance(weights, dict):
        return {k: tuple(v.shape) for k, v in weights.items()}
    try:
        if weights.endswith(".safetensors"):
            from safetensors import safe_open

            with safe_open(weights, "pt") as f:
                return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
        sd = torch.load(weights, map_location="cpu", weights_only=True, mmap=True)
        sd = unwrap_state_dict(sd, weights)
    except Exception:  # noqa: BLE001 - an old-format or broken file: the full reader says which
        sd = load_file(weights)
    return {k: tuple(v.shape) for k, v in sd.items()}
