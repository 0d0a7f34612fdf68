"""Weights from the Hugging Face Hub (timm's, and TorchGeo's sensor weights), through
huggingface_hub into its own cache. ``MODELKIT_OFFLINE=1`` (or the Hub's own ``HF_HUB_OFFLINE``)
keeps modelkit from downloading: a missing file fails at once, naming the file and where it
goes. Nothing is written into the process's environment.

A download is looked up once without retries (no network, or a Hub that is down, fails at once),
then fetched by ``hf_hub_download`` (``HF_ENDPOINT`` read at the call, so a mirror set after
import counts), then checked: the sha256 the Hub announced (an LFS file's ETag) and the prefix in
a torch.hub-style name. A failed or corrupt download leaves nothing that a later run would trust.
Inside :func:`download_listener`, the download reports its bytes (the app's progress bar).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import torch

from modelkit.config import PretrainedCfg
from modelkit.errors import WeightsLoadError, WeightsUnavailableError
from modelkit.models import weights_store
from modelkit.models.pretrained import find_state_dict, load_file, offline, unwrap_state_dict
from modelkit.models.timm_source import hub_cache

log = logging.getLogger(__name__)

TIMM_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm's Hub repos hold
ETAG_TIMEOUT_S = 10.0  # the first look at a file; huggingface_hub's own default
_RESOLVE = re.compile(r"^https://(?:hf\.co|huggingface\.co)/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def hub_location(cfg: PretrainedCfg) -> tuple[str, str | None, tuple[str, ...]] | None:
    """(repo, revision, candidate files) of a cfg's Hub weights, or None when not on the Hub."""
    if cfg.hf_hub_id:
        files = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else TIMM_FILES
        return cfg.hf_hub_id, None, files
    match = _RESOLVE.match(cfg.url or "")
    if match:
        return match.group(1), match.group(2), (match.group(3),)
    return None


@dataclass(frozen=True)
class Download:
    """Where a download stands: ``done`` of ``total`` bytes (total None when not announced).
    ``text`` names the file and the megabytes; a progress bar shows ``fraction`` as percent."""

    repo: str
    filename: str
    done: int
    total: int | None

    @property
    def fraction(self) -> float | None:
        return min(1.0, max(0.0, self.done / self.total)) if self.total else None

    @property
    def text(self) -> str:
        if self.total and self.done >= self.total:
            return f"Downloaded {self.filename} of {self.repo} ({self.total / 1e6:,.1f} MB)"
        what = f"Downloading {self.filename} of {self.repo}: {self.done / 1e6:,.1f}"
        return f"{what} of {self.total / 1e6:,.1f} MB" if self.total else f"{what} MB"


_listener: ContextVar[Callable[[Download], None] | None] = ContextVar(
    "modelkit_download_listener", default=None
)


@contextmanager
def download_listener(listener: Callable[[Download], None]) -> Iterator[None]:
    """Within this block, every Hub download of this thread reports to ``listener`` (start, each
    chunk of huggingface_hub's, end). The app passes its progress bar; nothing here knows it."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


class _Reporter:
    """Stands in for the tqdm bar huggingface_hub's download drives (its ``tqdm_class``)."""

    def __init__(self, listener, repo: str, filename: str, *, total=None, initial=0, **_):
        self.listener, self.repo, self.filename = listener, repo, filename
        self.total, self.n = total, initial
        self._send()

    def update(self, n: int = 1) -> None:
        self.n += n
        self._send()

    def _send(self) -> None:
        self.listener(Download(self.repo, self.filename, int(self.n), self.total))

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def hub_endpoint() -> str:
    """The Hub's address: ``HF_ENDPOINT`` read now (huggingface_hub reads it once, at import)."""
    from huggingface_hub import constants

    return os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or constants.ENDPOINT


def hub_file(cfg: PretrainedCfg) -> str:
    """The local path of a cfg's Hub weights, downloading into the Hub cache when allowed."""
    repo, revision, files = hub_location(cfg)
    from huggingface_hub import constants, try_to_load_from_cache

    cache = str(hub_cache())  # read now: HF_HUB_CACHE / HF_HOME may change after import
    for name in files:
        cached = try_to_load_from_cache(repo, name, cache_dir=cache, revision=revision)
        if isinstance(cached, str):
            weights_store.note_use(cached)
            return cached
    endpoint = hub_endpoint()
    page = f"{endpoint}/{repo}"
    if offline() or constants.is_offline_mode():
        switch = "MODELKIT_OFFLINE=1" if offline() else "HF_HUB_OFFLINE=1"
        raise WeightsUnavailableError(
            f"Weights for {cfg.name} are not on this machine and downloads are off "
            f"({switch}): {files[0]} of {page} is missing. On a machine with network, "
            f"run `hf download {repo} {files[0]}` and copy its Hugging Face cache to "
            f"{cache} (or set HF_HUB_CACHE), or download the file and pass "
            "checkpoint_path=<the file>."
        )
    for name in files:
        path = _download(repo, name, revision, cache, endpoint)
        if path:
            return path
    raise WeightsUnavailableError(f"{page} has none of the files {', '.join(files)}.")


def _download(repo: str, name: str, revision: str | None, cache: str, endpoint: str) -> str | None:
    """One file into the Hub cache, checked; None when the repo has no such file."""
    import httpx2  # huggingface_hub's HTTP client
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import (
        HfHubHTTPError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    url = hf_hub_url(repo, name, revision=revision, endpoint=endpoint)
    what = f"{name} of {endpoint}/{repo}"
    instead = (
        f"download it elsewhere and pass checkpoint_path=<the file>, or copy a Hugging Face "
        f"cache that holds it to {cache}."
    )
    # One look first, without huggingface_hub's retries (about 25 s of back-off): a machine
    # without network, or a Hub that is down, hears so at once.
    try:
        meta = get_hf_file_metadata(url, timeout=ETAG_TIMEOUT_S, endpoint=endpoint)
    except RemoteEntryNotFoundError:
        return None  # the repo keeps its weights under the other name
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
        raise WeightsUnavailableError(
            f"{endpoint}/{repo} (revision {revision or 'main'}) is not on the Hub, or it is "
            f"private or gated (HTTP {exc.response.status_code}). Check the name, or "
            f"{instead}"
        ) from None
    except HfHubHTTPError as exc:
        raise WeightsUnavailableError(
            f"Could not download {what}: the Hub answered HTTP {exc.response.status_code}. Try "
            f"again later, or {instead}"
        ) from None
    except (httpx2.HTTPError, OSError) as exc:  # no route, refused, timed out, Hub offline
        raise WeightsUnavailableError(
            f"Could not reach {urlsplit(url).netloc} to download {what} ({_first_line(exc)}). "
            f"Check the network, or {instead}"
        ) from None
    if not meta.commit_hash or not meta.etag:
        raise WeightsUnavailableError(
            f"{endpoint} did not answer like a Hugging Face Hub for {what} (no X-Repo-Commit or "
            "ETag header). Check HF_ENDPOINT and any proxy."
        )
    listener = _listener.get()
    reporter = functools.partial(_Reporter, listener, repo, name) if listener else None
    log.info("downloading %s (%s bytes) into %s", url, meta.size, cache)
    # hosting: too large for the weights total or the free disk -> refused before any byte
    with weights_store.reserve(meta.size, cache, f"{name} of {repo}"):
        try:
            path = hf_hub_download(
                repo, name, revision=revision, cache_dir=cache, endpoint=endpoint,
                etag_timeout=ETAG_TIMEOUT_S, tqdm_class=reporter,
            )  # fmt: skip
        except HfHubHTTPError as exc:
            _tidy(cache, repo)
            raise WeightsUnavailableError(
                f"Could not download {what}: the server answered HTTP "
                f"{exc.response.status_code}. Nothing was kept. Try again later, or {instead}"
            ) from None
        except (httpx2.HTTPError, OSError) as exc:  # refused, cut off, short, disk full
            _tidy(cache, repo)  # huggingface_hub removes its partial file; empty folders go too
            raise WeightsUnavailableError(
                f"Could not download {what}: {_first_line(exc)}. Nothing was kept. Try again, "
                f"or {instead}"
            ) from None
        _verify(path, name, meta.etag, cache, repo)
        weights_store.record(path, meta.size)
    return path


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0][:200].rstrip(".") if text else "") or type(exc).__name__


def _verify(path: str, filename: str, etag: str, cache: str, repo: str) -> None:
    """Check a fresh download: an LFS file's ETag is its sha256, and torch.hub-style names
    (``name-<sha256 prefix>.pth``) carry a prefix of it. A mismatch deletes the file."""
    wanted = [etag] if _SHA256.fullmatch(etag) else []
    match = re.search(r"-([0-9a-f]{8,})\.\w+$", filename)
    if match:
        wanted.append(match.group(1))
    if not wanted:
        return
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    digest = digest.hexdigest()
    for want in wanted:
        if not digest.startswith(want):
            _remove(path, cache, repo)
            raise WeightsLoadError(
                f"The downloaded {filename} has sha256 {digest[:12]}..., not {want[:12]}...: it "
                "is corrupt or not the published file, and was deleted. Try again."
            )


def _remove(path: str, cache: str, repo: str) -> None:
    """A file of the Hub cache: its snapshot link and the blob it points to."""
    blob = os.path.realpath(path)
    for p in {path, blob}:
        if os.path.lexists(p):
            os.remove(p)
    _tidy(cache, repo)


def _tidy(cache: str, repo: str) -> None:
    """Remove empty snapshot folders, so that an aborted download does not count as on disk."""
    snapshots = Path(cache) / f"models--{repo.replace('/', '--')}" / "snapshots"
    if not snapshots.is_dir():
        return
    for folder, _, _ in sorted(os.walk(snapshots), key=lambda w: -len(w[0])):
        with contextlib.suppress(OSError):  # not empty: kept
            os.rmdir(folder)


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
