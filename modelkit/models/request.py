"""The first step of create_model: what was asked for, resolved and checked (``ModelRequest``),
and which parts of such a model would be drawn at random (``random_parts``, without building)."""

from __future__ import annotations

from dataclasses import dataclass, field

from modelkit.config import PretrainedCfg
from modelkit.errors import ConfigError
from modelkit.models.arguments import (
    check_drop_rate,
    check_global_pool,
    check_in_chans,
    check_in_chans_init,
    check_num_classes,
    check_pool_fits,
)
from modelkit.models.registry import ModelEntry, get_entry, get_pretrained_cfg, replace_cfg

DETERMINISTIC_SOURCES = ("spectral",)  # sources whose builds draw nothing at random ("bands")


@dataclass
class ModelRequest:
    """One create_model call: the registry entry and checkpoint it names, and its arguments."""

    entry: ModelEntry
    cfg: PretrainedCfg  # the checkpoint's facts (after pretrained_cfg_overlay)
    load: bool  # weights are loaded (pretrained, a checkpoint file or an overlay's weights)
    num_classes: int | None
    in_chans: int | None
    in_chans_init: str
    rgb_channels: tuple[int, int, int] | None
    global_pool: str | None
    drop_rate: float | None
    checkpoint_path: str | None
    sources: dict = field(default_factory=dict)  # pretrained_cfg_overlay's "state_dict"/"file"
    kwargs: dict = field(default_factory=dict)  # for the family's builder (e.g. image_size)

    @property
    def name(self) -> str:
        """The registry name the model is built as (``arch.tag`` when a tag applies)."""
        return self.cfg.name if self.load and self.cfg.tag else self.entry.name


def resolve(
    name: str,
    *,
    pretrained: bool,
    num_classes,
    in_chans,
    global_pool,
    drop_rate,
    checkpoint_path,
    pretrained_cfg_overlay: dict | None,
    in_chans_init: str,
    rgb_channels,
    kwargs: dict,
) -> ModelRequest:
    """The entry, the checkpoint and every argument checked, before anything is built."""
    if "num_classes" in kwargs or "weights" in kwargs:
        raise ConfigError(
            "Pass num_classes as its own argument and use pretrained=True for weights."
        )
    entry = get_entry(name)
    cfg = get_pretrained_cfg(name)
    overlay = dict(pretrained_cfg_overlay or {})
    sources = {k: overlay.pop(k) for k in ("state_dict", "file") if k in overlay}
    cfg = replace_cfg(cfg, **overlay) if overlay else cfg
    num_classes = check_num_classes(num_classes)
    in_chans = check_in_chans(in_chans)
    check_pool_fits(check_global_pool(global_pool), num_classes)
    rgb = check_in_chans_init(in_chans_init, rgb_channels, in_chans or cfg.in_chans)
    return ModelRequest(
        entry=entry, cfg=cfg, load=bool(pretrained or checkpoint_path or sources),
        num_classes=num_classes, in_chans=in_chans, in_chans_init=in_chans_init,
        rgb_channels=rgb, global_pool=global_pool, drop_rate=check_drop_rate(drop_rate),
        checkpoint_path=str(checkpoint_path) if checkpoint_path else None, sources=sources,
        kwargs=dict(kwargs),
    )  # fmt: skip


def random_parts(
    name: str,
    pretrained: bool = False,
    num_classes: int | None = None,
    in_chans: int | None = None,
    in_chans_init: str = "repeat",
    with_head: bool = True,
) -> list[str]:
    """Which parts ``create_model`` would initialise at random with these settings (without
    building anything); empty when two builds give the same outputs.

    Nothing is seeded, so a rebuild draws new random weights: callers that cache results (the
    engine's disk cache) must not keep results of such a model. ``with_head=False`` is for
    feature maps, which never pass through the classifier.
    """
    if get_entry(name).source in DETERMINISTIC_SOURCES:  # "bands": statistics, nothing drawn
        return [f"head for {num_classes} classes"] if with_head and num_classes else []
    if not pretrained:
        return ["all weights"]
    parts = []
    cfg = get_pretrained_cfg(name)
    if in_chans_init == "random" and in_chans is not None and in_chans > cfg.in_chans:
        parts.append(f"first-conv filters for channels {cfg.in_chans} to {in_chans - 1}")
    if with_head and num_classes is not None and num_classes not in (0, cfg.num_classes):
        parts.append(f"head for {num_classes} classes")
    return parts
