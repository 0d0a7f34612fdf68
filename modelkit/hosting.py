"""Every limit a deployer sets when hosting modelkit in public, in one place.

Each limit is read from its environment variable when it is asked for (a Space's settings, a
start script or a test's monkeypatch all count), with one default for a person's own machine and
a stricter one on a Hugging Face Space (detected by ``SPACE_ID``, which every Space sets). For an
optional limit, ``0``, ``none`` or ``off`` turns it off. README.md ("Hosting in public") lists
them all with both defaults.

    limits() -> Limits                          # every limit, read now (a frozen record)
    SETTINGS                                    # the table: field, variable, defaults
    check_batch_images(count)                   # LimitError in words when over the limit
    check_ig_steps(steps)
    check_scene_pixels(height, width)
    machine_memory_mb() -> int                  # what this process may use (cgroup aware)
    free_disk_bytes(folder) -> int
    model_cache_mb() -> int                     # MODELKIT_MODEL_CACHE_MB
    human_bytes(n) -> str                       # "27.0 GB", "350 MB": sizes in messages
"""

from __future__ import annotations

import functools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from modelkit.errors import ConfigError, LimitError

AUTO = "auto"  # a default computed from the machine (max_model_mb)
OFF = {"0", "none", "off", "no", "false"}
MODEL_CACHE_MB = 2048  # MODELKIT_MODEL_CACHE_MB's default
# memory the app itself needs beside the model cache and one build (python, torch, gradio,
# a forward pass): measured 600-900 MB resident for a served app on the CPU
RESERVE_MB = {"own": 1024, "space": 2048}
MIN_MODEL_MB = 256
UNKNOWN_MEMORY_MB = 8192  # assumed where the machine's memory cannot be read


@dataclass(frozen=True)
class Setting:
    """One limit: the Limits field, its variable, its default on a person's own machine and on
    a Space (None: no limit; AUTO: computed), whether 0/none may turn it off, what it bounds."""

    field: str
    env: str
    own: float | str | None
    space: float | str | None
    kind: type = int
    optional: bool = True
    what: str = ""


SETTINGS = (
    Setting("max_model_mb", "MODELKIT_MAX_MODEL_MB", AUTO, AUTO, optional=False,
            what="memory one model's build may take at its peak"),
    Setting("max_weights_gb", "MODELKIT_MAX_WEIGHTS_GB", None, 20, float,
            what="total of the weights files modelkit downloads (least recently used go first)"),
    Setting("min_free_disk_mb", "MODELKIT_MIN_FREE_DISK_MB", 1024, 5120,
            what="disk a download must leave free"),
    Setting("max_uploads_mb", "MODELKIT_MAX_UPLOADS_MB", None, 4096,
            what="total of Gradio's upload folder (oldest files go first)"),
    Setting("upload_max_age_s", "MODELKIT_UPLOAD_MAX_AGE_S", None, 3600,
            what="age after which an upload is deleted"),
    Setting("cleanup_every_s", "MODELKIT_CLEANUP_EVERY_S", 300, 60, optional=False,
            what="how often the upload folder is checked"),
    Setting("max_exports_mb", "MODELKIT_MAX_EXPORTS_MB", None, 2048,
            what="total of the download files (CSV, NPZ, weights) the app keeps"),
    Setting("export_max_age_s", "MODELKIT_EXPORT_MAX_AGE_S", 3600, 3600, optional=False,
            what="age after which a download file is deleted"),
    Setting("queue_max_size", "MODELKIT_QUEUE_MAX", None, 32,
            what="requests waiting in the queue; more are told the server is busy"),
    Setting("max_batch_images", "MODELKIT_MAX_BATCH_IMAGES", None, 500,
            what="images in one batch"),
    Setting("max_scene_pixels", "MODELKIT_MAX_SCENE_PIXELS", None, 25_000_000,
            what="pixels of one scene map"),
    Setting("max_ig_steps", "MODELKIT_MAX_IG_STEPS", 1024, 64, optional=False,
            what="steps of one integrated-gradients explanation"),
)  # fmt: skip


@dataclass(frozen=True)
class Limits:
    """Every limit in force now (None: no limit). See SETTINGS for what each one bounds."""

    on_space: bool
    max_model_mb: int
    max_weights_gb: float | None
    min_free_disk_mb: int | None
    max_uploads_mb: int | None
    upload_max_age_s: int | None
    cleanup_every_s: int
    max_exports_mb: int | None
    export_max_age_s: int
    queue_max_size: int | None
    max_batch_images: int | None
    max_scene_pixels: int | None
    max_ig_steps: int

    @property
    def max_weights_bytes(self) -> int | None:
        return None if self.max_weights_gb is None else int(self.max_weights_gb * 2**30)

    @property
    def min_free_disk_bytes(self) -> int:
        return (self.min_free_disk_mb or 0) * 2**20


def on_space() -> bool:
    """True on a Hugging Face Space (the platform sets SPACE_ID, e.g. ``user/name``)."""
    return bool(os.environ.get("SPACE_ID", "").strip())


def _number(setting: Setting, raw: str) -> float | None:
    text = raw.strip().lower().replace("_", "")
    if setting.optional and text in OFF:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or (setting.kind is int and not value.is_integer()):
        off = " or 0 / none for no limit" if setting.optional else ""
        raise ConfigError(
            f"The setting {setting.env}={raw!r} is not valid: use a "
            f"{'whole ' if setting.kind is int else ''}number above 0{off}."
        )
    return int(value) if setting.kind is int else value


def _read(setting: Setting, space: bool):
    raw = os.environ.get(setting.env, "").strip()
    if raw:
        return _number(setting, raw)
    default = setting.space if space else setting.own
    return default_model_mb(space) if default == AUTO else default


def limits() -> Limits:
    """Every limit, read from the environment now (cheap: a dozen variables)."""
    space = on_space()
    return Limits(on_space=space, **{s.field: _read(s, space) for s in SETTINGS})


# --- the machine ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def machine_memory_mb() -> int:
    """Memory this process may use: the machine's, or its container's limit when lower (a
    Space's 16 GB live in a cgroup on a larger host)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): a modest machine
        total = UNKNOWN_MEMORY_MB * 2**20
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total // 2**20


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() else default


def model_cache_mb() -> int:
    """The model cache's budget (MODELKIT_MODEL_CACHE_MB, default 2048)."""
    return _env_int("MODELKIT_MODEL_CACHE_MB", MODEL_CACHE_MB)


def default_model_mb(space: bool) -> int:
    """What one build may take when MODELKIT_MAX_MODEL_MB is not set: the machine's memory
    less the model cache's budget and what the app itself needs; on a Space also shared among
    the builds that may run at once (MODELKIT_CONCURRENCY)."""
    reserve = RESERVE_MB["space" if space else "own"]
    free = machine_memory_mb() - model_cache_mb() - reserve
    if space:
        free //= max(1, _env_int("MODELKIT_CONCURRENCY", 1))
    return max(MIN_MODEL_MB, free)


def free_disk_bytes(folder: str | os.PathLike) -> int:
    """Free bytes on the disk that holds ``folder`` (or its nearest existing parent)."""
    path = Path(folder).expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def human_bytes(n_bytes: float) -> str:
    """A size in the units people read file and memory sizes in (decimal GB, MB, kB)."""
    if n_bytes >= 0.95e9:
        return f"{n_bytes / 1e9:,.1f} GB"
    if n_bytes >= 0.95e6:
        return f"{n_bytes / 1e6:,.{1 if n_bytes < 9.95e6 else 0}f} MB"
    return f"{n_bytes / 1e3:,.0f} kB"


# --- per-request caps -------------------------------------------------------------------------

ELSEWHERE = "or run modelkit on your own machine, where this limit is off by default"


def check_batch_images(count: int) -> None:
    """A LimitError when a batch of ``count`` images is over MODELKIT_MAX_BATCH_IMAGES."""
    limit = limits().max_batch_images
    if limit is not None and count > limit:
        raise LimitError(
            f"This batch has {count:,} images; this server runs at most {limit:,} images in one "
            f"batch. Split them into ZIPs of up to {limit:,} images, {ELSEWHERE} "
            "(`python -m modelkit batch`)."
        )


def check_ig_steps(steps: int) -> None:
    """A LimitError when integrated gradients asks for more steps than MODELKIT_MAX_IG_STEPS."""
    limit = limits().max_ig_steps
    if steps > limit:
        raise LimitError(
            f"Integrated gradients with {steps} steps: this server allows at most {limit} steps "
            f"per explanation. Use {limit} or fewer (32 is usually enough), {ELSEWHERE}."
        )


def check_scene_pixels(height: int, width: int) -> None:
    """A LimitError when a scene of ``height`` x ``width`` is over MODELKIT_MAX_SCENE_PIXELS
    (the scene map calls this before reading any window)."""
    limit = limits().max_scene_pixels
    if limit is not None and height * width > limit:
        raise LimitError(
            f"The scene is {width:,} x {height:,} pixels ({height * width / 1e6:,.1f} "
            f"megapixels); this server maps at most {limit / 1e6:,.1f} megapixels at once. "
            f"Map a smaller part of it, {ELSEWHERE}."
        )
