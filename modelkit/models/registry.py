"""The model registry: names, families, builders and pretrained tags (``arch.tag``)."""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from torch import nn

from modelkit.config import PretrainedCfg
from modelkit.errors import ConfigError, UnknownModelError
from modelkit.models.features import FamilySpec


@dataclass
class ModelEntry:
    """One architecture: how to build it and which checkpoints exist for it."""

    name: str
    family: FamilySpec
    builder: Callable[..., nn.Module]  # builder(num_classes=..., **kwargs) -> native model
    cfgs: dict[str, PretrainedCfg]  # tag -> cfg, the default tag first
    source: str = ""  # which source registered it ("torchvision", "timm", ...)
    base_cfg: PretrainedCfg | None = None  # the input facts of a model without weights

    @property
    def default_tag(self) -> str:
        return next(iter(self.cfgs), "")

    @property
    def default_cfg(self) -> PretrainedCfg:
        """The default checkpoint, or a weightless cfg for models without weights."""
        if self.cfgs:
            return self.cfgs[self.default_tag]
        if self.base_cfg is not None:
            return self.base_cfg
        return PretrainedCfg(
            architecture=self.name,
            first_conv=self.family.first_conv,
            classifier=self.family.classifier,
        )


_REGISTRY: dict[str, ModelEntry] = {}
_LOADED = False
_LAZY_LOADED: set[str] = set()  # name prefixes of the lazy sources registered so far


def register_model(
    name: str,
    family: FamilySpec,
    builder: Callable[..., nn.Module],
    cfgs: Sequence[PretrainedCfg] = (),
    source: str = "",
    base_cfg: PretrainedCfg | None = None,
) -> None:
    """Add (or replace) an architecture; the cfg marked default (else the first) is the default."""
    ordered = sorted(cfgs, key=lambda c: not c.is_default)
    cfg_map = {c.tag: c for c in ordered}
    _REGISTRY[name] = ModelEntry(name, family, builder, cfg_map, source, base_cfg)


def _register_all(entries: Iterable[dict]) -> None:
    for e in entries:
        register_model(e["name"], e["family"], e["builder"], e["cfgs"], e.get("source", ""),
                       e.get("base_cfg"))  # fmt: skip


def _ensure_loaded(patterns: Sequence[str] | None = None, source: str | None = None) -> None:
    """Register the eager sources once, and each lazy source (``timm/...``) the first time a
    name or pattern could reach its prefix (``None``: every source)."""
    global _LOADED
    from modelkit.models.sources import LAZY_SOURCES, all_entries

    if not _LOADED:
        _LOADED = True
        _register_all(all_entries())
    for prefix, (name, entries) in LAZY_SOURCES.items():
        if prefix in _LAZY_LOADED or (source is not None and source != name):
            continue
        if patterns is None or any(_may_reach(p, prefix) for p in patterns):
            _LAZY_LOADED.add(prefix)
            _register_all(entries())


def _may_reach(pattern: str, prefix: str) -> bool:
    """Whether a shell pattern could match a name starting with ``prefix``."""
    literal = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
    return literal.startswith(prefix) or prefix.startswith(literal)


def _entries(patterns: Sequence[str] | None = None, source: str | None = None):
    _ensure_loaded(patterns, source)
    return _REGISTRY


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _as_patterns(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def list_models(
    filter: str | Sequence[str] = "",
    pretrained: bool = False,
    exclude_filters: str | Sequence[str] = (),
    family: str | None = None,
    source: str | None = None,
) -> list[str]:
    """Sorted architecture names matching shell wildcards (``"resnet*"``, ``"timm/*vit*"``);
    ``source`` keeps one source's models ("torchvision", "efficientnet_lite", "timm")."""
    include = _as_patterns(filter) if filter else ["*"]
    exclude = _as_patterns(exclude_filters)
    names = [
        e.name
        for e in list(_entries(include, source).values())
        if _matches(e.name, include)
        and not _matches(e.name, exclude)
        and (family is None or e.family.name == family)
        and (source is None or e.source == source)
        and (not pretrained or any(c.has_weights for c in e.cfgs.values()))
    ]
    return sorted(names)


def list_pretrained(filter: str | Sequence[str] = "") -> list[str]:
    """Sorted ``arch.tag`` names of every checkpoint, matching shell wildcards."""
    include = _as_patterns(filter) if filter else ["*"]
    names = [
        c.name for e in list(_entries(include).values()) for c in e.cfgs.values() if c.has_weights
    ]
    return sorted(n for n in names if _matches(n, include) or _matches(n.split(".")[0], include))


def list_families(source: str | None = None) -> list[str]:
    entries = list(_entries(None, source).values())
    return sorted({e.family.name for e in entries if source is None or e.source == source})


def list_sources(lazy: bool = True) -> list[str]:
    """The model sources, eager ones first; ``lazy=False``: only those registered at the first
    look-up (listing names does not load any source)."""
    from modelkit.models.sources import LAZY_SOURCES, SOURCES

    names = [name for name, _ in SOURCES]
    return names + [name for name, _ in LAZY_SOURCES.values()] if lazy else names


def is_model(name: str) -> bool:
    arch = split_name(name)[0]
    return arch in _entries([arch])


def split_name(name: str) -> tuple[str, str]:
    """``"resnet50.imagenet1k_v2"`` -> ``("resnet50", "imagenet1k_v2")``."""
    arch, _, tag = str(name).partition(".")
    return arch, tag.lower()


def get_entry(name: str) -> ModelEntry:
    arch, _ = split_name(name)
    entries = _entries([arch])
    if arch not in entries:
        close = difflib.get_close_matches(arch, list(entries), n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"Unknown model {arch!r}.{hint} Search the model list (list_models() in Python) for "
            "the names that exist."
        )
    return entries[arch]


def get_pretrained_cfg(name: str) -> PretrainedCfg:
    """The cfg of ``arch.tag``, or of the default tag for a bare ``arch``."""
    entry = get_entry(name)
    _, tag = split_name(name)
    if not tag:
        return entry.default_cfg
    if tag not in entry.cfgs:
        tags = ", ".join(entry.cfgs) or "none (this model has no pretrained weights)"
        raise ConfigError(
            f"Model {entry.name!r} has no pretrained tag {tag!r}. Tags it has: {tags}."
        )
    return entry.cfgs[tag]


def replace_cfg(cfg: PretrainedCfg, **changes) -> PretrainedCfg:
    """A copy of ``cfg`` with fields changed; unknown field names raise ConfigError."""
    known = {f.name for f in dataclasses.fields(PretrainedCfg)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ConfigError(
            f"pretrained_cfg_overlay has unknown keys {unknown}; use 'state_dict', 'file' or "
            f"fields of PretrainedCfg: {', '.join(sorted(known))}."
        )
    return dataclasses.replace(cfg, **changes)
