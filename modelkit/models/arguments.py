"""The checks of create_model's arguments, each written once: ``request.resolve`` (create_model's
first step) calls them, and so does ``runtime.settings.RunSettings`` (the page and every public
function), so a setting means the same and is refused in the same words everywhere. Each check
returns the value in its normal form (or raises ConfigError with the fix).
"""

from __future__ import annotations

from modelkit.errors import ConfigError

IN_CHANS_INITS = ("repeat", "rgb", "random")
GLOBAL_POOLS = ("avg", "")
MAX_IN_CHANS = 512  # the readers' own channel limit (images.limits.ReadLimits)
MAX_NUM_CLASSES = 100_000


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_num_classes(num_classes) -> int | None:
    """None (the checkpoint's head), 0 (no head: pooled features) or a class count."""
    if num_classes is None:
        return None
    if not _whole(num_classes) or not 0 <= num_classes <= MAX_NUM_CLASSES:
        raise ConfigError(
            f"num_classes={num_classes!r} is not valid; use a whole number from 1 to "
            f"{MAX_NUM_CLASSES:,} (or 0 for pooled features without a classifier), or leave it "
            "empty for the pretrained head."
        )
    return num_classes


def check_in_chans(in_chans) -> int | None:
    """None (the checkpoint's channel count) or a channel count the readers can give."""
    if in_chans is None:
        return None
    if not _whole(in_chans) or not 1 <= in_chans <= MAX_IN_CHANS:
        raise ConfigError(
            f"in_chans={in_chans!r} is not valid; use a whole number from 1 to {MAX_IN_CHANS}, "
            "or leave it empty for the checkpoint's own channel count."
        )
    return in_chans


def check_global_pool(global_pool) -> str | None:
    if global_pool is not None and global_pool not in GLOBAL_POOLS:
        raise ConfigError(
            f"global_pool={global_pool!r} is not supported; use 'avg' (the family's own pooling) "
            "or '' (no pooling, with num_classes=0)."
        )
    return global_pool


def check_drop_rate(drop_rate) -> float | None:
    if drop_rate is not None and not (
        isinstance(drop_rate, int | float) and not isinstance(drop_rate, bool)
        and 0 <= drop_rate < 1
    ):  # fmt: skip
        raise ConfigError(f"drop_rate={drop_rate!r} is not valid; use a number from 0 up to 1.")
    return drop_rate


def check_in_chans_init(in_chans_init: str, rgb_channels, in_chans: int | None
                        ) -> tuple[int, int, int] | None:  # fmt: skip
    """How filters for other channel counts are made; returns the RGB channels ('rgb' only).

    ``in_chans`` None: the channel numbers are checked against the model's own count later
    (``check_rgb_channels`` again, with the count)."""
    if in_chans_init not in IN_CHANS_INITS:
        raise ConfigError(
            f"in_chans_init={in_chans_init!r} is not known; use one of {', '.join(IN_CHANS_INITS)}."
        )
    if in_chans_init != "rgb":
        if rgb_channels is not None:
            raise ConfigError(
                "rgb_channels is only used with in_chans_init='rgb'; set both or neither."
            )
        return None
    return check_rgb_channels(rgb_channels, in_chans)


def check_rgb_channels(rgb_channels, in_chans: int | None) -> tuple[int, int, int]:
    top = f"from 0 to {in_chans - 1}" if in_chans else "(0 and up)"
    if rgb_channels is None or isinstance(rgb_channels, str) or len(rgb_channels) != 3:
        raise ConfigError(
            f"in_chans_init='rgb' needs rgb_channels=(r, g, b), three input channel numbers "
            f"{top}; got {rgb_channels!r}."
        )
    chans = tuple(rgb_channels)
    if any(not _whole(c) or c < 0 or (in_chans and c >= in_chans) for c in chans):
        raise ConfigError(f"rgb_channels={chans!r}: each must be a channel number {top}.")
    if len(set(chans)) != 3:
        raise ConfigError(f"rgb_channels={chans!r} repeats a channel; name three different ones.")
    return chans  # type: ignore[return-value]


def check_reset(num_classes, global_pool, current_pool: str) -> tuple[int, str]:
    """(num_classes, pool) for ``reset_classifier``: checked, the pool kept when None."""
    if num_classes is None:
        raise ConfigError("reset_classifier needs num_classes (0 for no classifier).")
    num_classes = check_num_classes(num_classes)
    pool = current_pool if global_pool is None else check_global_pool(global_pool)
    check_pool_fits(pool, num_classes)
    return num_classes, pool


def check_pool_fits(global_pool: str | None, num_classes: int | None) -> None:
    if global_pool == "" and num_classes != 0:
        got = (
            "no num_classes (the checkpoint's head)"
            if num_classes is None
            else (f"num_classes={num_classes}")
        )
        raise ConfigError(
            f"global_pool='' (no pooling) works only with num_classes=0, got {got}; use "
            "global_pool='avg' to classify."
        )
