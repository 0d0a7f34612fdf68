"""timm as a model source: every timm architecture and pretrained tag, named ``timm/<arch>[.<tag>]``
(the Hugging Face Hub's spelling), beside torchvision's models.

Start-up does not pay for 1,371 more models. timm is imported only to build an index of names,
tags and each tag's preprocessing and licence, once per timm version, kept on disk as JSON: the
index for the pinned timm ships with modelkit (``timm_index.json.gz``, ~36 kB, made by
``scripts/timm_index.py``); another timm version gets its own in ``<cache>/timm/``. Facts that
need a build (parameter count, feature levels) ship too (``timm_facts.json.gz``); for another
timm version they are computed on the meta device when first asked for and kept in
``<cache>/timm/facts-<version>.json``. ``<cache>`` is ``MODELKIT_CACHE_DIR``
when set, else ``~/.cache/modelkit`` (under ``XDG_CACHE_HOME`` when set).
"""

from __future__ import annotations

import functools
import gzip
import importlib.metadata
import json
import logging
import os
import tempfile
import threading
from pathlib import Path

from modelkit.config import PretrainedCfg
from modelkit.models.features import FamilySpec

log = logging.getLogger(__name__)

PREFIX = "timm/"
# Licences whose terms forbid commercial use (flagged in search and on the card).
NONCOMMERCIAL = {
    "cc-by-nc-4.0", "cc-by-nc-sa-4.0", "cc-by-nc-nd-4.0", "fair-noncommercial-research-license",
    "seer-license", "apple-amlr", "sapiens2-license",
}  # fmt: skip
# Licences that allow commercial use; anything else is a custom licence to read.
OPEN = {"apache-2.0", "mit", "bsd-3-clause", "cc-by-4.0", "bsd-2-clause", "cc0-1.0"}
# PretrainedCfg fields read from timm's cfgs, and the JSON keys they are kept under
_FIELDS = (
    "hf_hub_id", "hf_hub_filename", "url", "num_classes", "input_size", "interpolation",
    "crop_pct", "crop_mode", "mean", "std", "first_conv", "classifier", "license",
    "label_offset", "fixed_input_size", "custom_load",
)  # fmt: skip
_LOCK = threading.Lock()


def cache_dir() -> Path:
    env = os.environ.get("MODELKIT_CACHE_DIR", "").strip()
    if env:
        return Path(env).expanduser() / "timm"
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or Path.home() / ".cache"
    return Path(base) / "modelkit" / "timm"


def timm_version() -> str:
    return importlib.metadata.version("timm")  # reads package metadata, does not import timm


def license_note(license: str | None) -> str:
    """'' for an open licence, else a short warning (non-commercial, or terms to read)."""
    lic = (license or "").lower()
    if lic in NONCOMMERCIAL or "noncommercial" in lic or "-nc-" in lic:
        return "non-commercial"
    if lic and lic not in OPEN:
        return "custom: read its terms"
    return "" if lic else "licence not stated"


# --- the index --------------------------------------------------------------------------------


def _jsonable(value):
    return list(value) if isinstance(value, tuple) else value


def _cfg_dict(cfg) -> dict:
    out = {}
    for key in _FIELDS:
        value = getattr(cfg, key, None)
        if value not in (None, "", False, 0) or key == "num_classes":
            out[key] = _jsonable(value)
    return out


def build_index() -> dict:
    """Names, tags and per-tag facts of every timm architecture (imports timm: ~2-5 s)."""
    import timm
    from timm.models import get_arch_pretrained_cfgs
    from timm.models._registry import _model_to_module

    archs = {}
    for arch in timm.list_models():
        cfgs = get_arch_pretrained_cfgs(arch)  # tag -> timm PretrainedCfg, the default first
        tags = {}
        for key, cfg in cfgs.items():  # keys are "arch.tag"
            tags[key.partition(".")[2]] = _cfg_dict(cfg) | {
                "weights": bool(cfg.hf_hub_id or cfg.url or cfg.file)
            }
        archs[arch] = {"module": _model_to_module.get(arch, "").rsplit(".", 1)[-1], "tags": tags}
    return {"timm": timm_version(), "archs": archs}


def _write_json(path: Path, data: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".partial")
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, separators=(",", ":"))
        os.replace(tmp, path)
    except OSError as exc:  # a read-only cache only costs time on the next start
        log.warning("could not write %s: %s", path, exc)


SHIPPED_INDEX = Path(__file__).with_name("timm_index.json.gz")  # scripts/timm_index.py


def _read_for_this_timm(path: Path) -> dict | None:
    """A JSON file (gzipped when it ends in .gz) made for the installed timm, else None."""
    try:
        raw = path.read_bytes()
        data = json.loads(gzip.decompress(raw) if path.suffix == ".gz" else raw)
    except (OSError, ValueError):
        return None
    return data if data.get("timm") == timm_version() else None


@functools.lru_cache(maxsize=1)
def load_index() -> dict:
    """The index for the installed timm: the one shipped with modelkit (for the pinned timm),
    else the one in the cache folder, else built (importing timm) and written there."""
    for path in (SHIPPED_INDEX, cache_dir() / f"index-{timm_version()}.json"):
        data = _read_for_this_timm(path)
        if data is not None:
            return data
    data = build_index()
    _write_json(cache_dir() / f"index-{timm_version()}.json", data)
    return data


def _our_cfg(arch: str, tag: str, d: dict, is_default: bool) -> PretrainedCfg:
    def joined(v):
        return ",".join(v) if isinstance(v, list) else (v or "")

    size = tuple(d.get("input_size") or (3, 224, 224))
    weights = bool(d.get("weights"))
    return PretrainedCfg(
        architecture=PREFIX + arch,
        tag=tag if weights else "",
        url=None if d.get("hf_hub_id") or not weights else d.get("url"),
        hub_filename=None if d.get("hf_hub_id") or not d.get("url") else d["url"].split("/")[-1],
        hf_hub_id=d.get("hf_hub_id") if weights else None,
        hf_hub_filename=d.get("hf_hub_filename"),
        num_classes=int(d.get("num_classes") or 0),
        in_chans=size[0],
        input_size=size,
        mean=tuple(d.get("mean") or (0.485, 0.456, 0.406)),
        std=tuple(d.get("std") or (0.229, 0.224, 0.225)),
        interpolation=d.get("interpolation") or "bicubic",
        crop_pct=float(d.get("crop_pct") or 0.875),
        crop_mode=d.get("crop_mode") or "center",
        first_conv=joined(d.get("first_conv")),
        classifier=joined(d.get("classifier")),
        label_offset=int(d.get("label_offset") or 0),
        license=d.get("license") or "",
        source="timm",
        is_default=is_default,
    )


_FAMILIES: dict[str, FamilySpec] = {}


def _family(module: str) -> FamilySpec:
    """One spec per timm module; timm models run through their own methods, not steps."""
    if module not in _FAMILIES:
        _FAMILIES[module] = FamilySpec(module, first_conv="", classifier="", steps=(), head=())
    return _FAMILIES[module]


def build_timm(arch: str, **kwargs):
    """``timm.create_model(arch, **kwargs)``: the entry's builder (imports timm)."""
    import timm

    return timm.create_model(arch, **kwargs)


def timm_entries() -> list[dict]:
    """One registry entry per timm architecture, its tags with weights as cfgs, plus the
    sensor-native weights of modelkit.models.sensors as extra tags."""
    from modelkit.models.sensors import sensor_cfgs

    extra: dict[str, list[PretrainedCfg]] = {}
    for cfg in sensor_cfgs():
        extra.setdefault(cfg.architecture, []).append(cfg)
    entries = []
    for arch, info in load_index()["archs"].items():
        tags = info["tags"]
        cfgs = [
            _our_cfg(arch, tag, d, i == 0)
            for i, (tag, d) in enumerate(tags.items())
            if d["weights"]
        ]
        first = next(iter(tags.items()), ("", {}))
        base = _our_cfg(arch, "", first[1] | {"weights": False}, False)
        entries.append({
            "name": PREFIX + arch, "family": _family(info["module"]),
            "builder": functools.partial(build_timm, arch), "source": "timm",
            "cfgs": cfgs + extra.get(PREFIX + arch, []), "base_cfg": base,
        })  # fmt: skip
    return entries


def timm_name(name: str) -> str:
    """``timm/convnext_tiny.fb_in1k`` -> ``convnext_tiny.fb_in1k`` (timm's own spelling)."""
    return name[len(PREFIX) :] if name.startswith(PREFIX) else name


def levels_of(model) -> list[dict]:
    """A timm model's feature levels (its ``feature_info``) in modelkit's words, keeping timm's
    ``num_chs`` so timm's own code can still read them."""
    info = getattr(model, "feature_info", None) or []
    return [
        {"index": i, "module": f.get("module", ""), "channels": int(f["num_chs"]),
         "reduction": int(f["reduction"]), "num_chs": int(f["num_chs"])}
        for i, f in enumerate(info)
    ]  # fmt: skip


# --- facts kept on disk -----------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _facts_path() -> Path:
    return cache_dir() / f"facts-{timm_version()}.json"


SHIPPED_FACTS = Path(__file__).with_name("timm_facts.json.gz")  # scripts/timm_index.py
_FACTS: dict | None = None  # computed on this machine (the facts file)
_SHIPPED: dict | None = None  # shipped for the pinned timm


def _shipped_facts() -> dict:
    return (_read_for_this_timm(SHIPPED_FACTS) or {}).get("facts", {})


def stored_facts() -> dict:
    """arch -> {"params": int, "levels": [...]} (or {"error": str}): shipped for the pinned timm
    (so search shows every timm model's size), and those computed on this machine."""
    global _FACTS, _SHIPPED
    with _LOCK:
        if _SHIPPED is None:
            _SHIPPED = _shipped_facts()
        if _FACTS is None:
            try:
                _FACTS = json.loads(_facts_path().read_text())
            except (OSError, ValueError):
                _FACTS = {}
        return _SHIPPED | _FACTS if _FACTS else _SHIPPED


def store_facts(arch: str, facts: dict) -> None:
    stored_facts()
    with _LOCK:
        _FACTS[arch] = facts
        _write_json(_facts_path(), dict(_FACTS))


# --- weights on disk (Hugging Face cache) -----------------------------------------------------


def hub_cache() -> Path:
    env = os.environ.get("HF_HUB_CACHE", "").strip()
    if env:
        return Path(env).expanduser()
    home = os.environ.get("HF_HOME", "").strip()
    if home:
        return Path(home).expanduser() / "hub"
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or Path.home() / ".cache"
    return Path(base) / "huggingface" / "hub"


def repos_on_disk() -> set[str]:
    """Hub repo ids with at least one downloaded snapshot (one directory listing)."""
    try:
        names = [e.name for e in os.scandir(hub_cache()) if e.name.startswith("models--")]
    except OSError:
        return set()
    repos = set()
    for name in names:
        snaps = hub_cache() / name / "snapshots"
        if snaps.is_dir() and any(snaps.iterdir()):
            repos.add(name[len("models--") :].replace("--", "/"))
    return repos
