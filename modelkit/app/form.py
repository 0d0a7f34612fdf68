"""What the app shows in words and tables, and how it reads its form: no gradio here.

Public API::

    search_models(query="", pretrained_only=False, on_disk=False, family="", sort="name",
                  source="")
        -> list[dict]      # name, family, params_m, acc1, weights ("on this machine" | "download"
                           # | "too large for this server"), source, licence ("" or
                           # "non-commercial" / "custom: read its terms"), too_large ("" or why)
    search_rows(models) -> list[list]                  # the same as table rows (SEARCH_HEADERS)
    model_card(info) -> str                            # markdown from factory.model_info
    model_line(info) -> str                            # one line beside the model box
    image_summary(image) -> str                        # markdown: format, shape, dtype, notes
    prediction_note(result_head_is_random, num_classes, adaptations) -> str
    level_summary(level: dict, shape) -> str
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Sequence

from modelkit.errors import ConfigError, ModelkitError
from modelkit.images.limits import ImageArray
from modelkit.models.info import model_summaries
from modelkit.models.registry import list_models
from modelkit.models.sensors import suggestions

log = logging.getLogger(__name__)

SEARCH_HEADERS = ["model", "family", "params (M)", "top-1 %", "weights", "licence"]
TOO_LARGE = "too large for this server"  # the weights column of a model the server cannot run
SORTS = {"name": "name", "accuracy": "acc1", "size": "params_m"}
WILDCARDS = set("*?[")


def _terms(query: str) -> list[str]:
    """Plain words become '*word*'; words with shell wildcards are used as they are."""
    terms = [t for t in re.split(r"[\s,]+", (query or "").strip().lower()) if t]
    return [t if WILDCARDS & set(t) else f"*{t}*" for t in terms]


def search_models(
    query: str = "",
    pretrained_only: bool = False,
    on_disk: bool = False,
    family: str | None = "",
    sort: str = "name",
    source: str | None = "",
) -> list[dict]:
    """Models whose names match every search term (and the filters), sorted by ``sort``.
    Parameter counts of timm models come from the facts shipped for the pinned timm."""
    if sort not in SORTS:
        raise ConfigError(f"Sort by {sort!r} is not known; use one of {', '.join(SORTS)}.")
    terms = _terms(query)
    names = list_models(pretrained=pretrained_only, family=family or None, source=source or None)
    names = [n for n in names if all(fnmatch.fnmatchcase(n.lower(), t) for t in terms)]
    rows = []
    for info in _summaries(names):
        if on_disk and not info["weights_on_disk"]:
            continue
        rows.append({
            "name": info["name"],
            "family": info["family"],
            "params_m": None if info["params"] is None else round(info["params"] / 1e6, 2),
            "acc1": None if info["acc@1"] is None else round(info["acc@1"], 1),
            "weights": _weights_word(info),
            "source": info["source"],
            "licence": info["license_note"],
            "too_large": info.get("too_large", ""),  # hosting: why this server cannot run it
        })  # fmt: skip
    key = SORTS[sort]
    if key == "name":
        return rows
    # accuracy: best first, unknown last; size: smallest first
    if key == "acc1":
        return sorted(rows, key=lambda r: (r["acc1"] is None, -(r["acc1"] or 0), r["name"]))
    return sorted(rows, key=lambda r: (r["params_m"] is None, r["params_m"] or 0, r["name"]))


def _summaries(names: list[str]) -> list[dict]:
    try:
        return model_summaries(names)
    except ModelkitError:  # one broken registered model must not hide the others
        out = []
        for name in names:
            try:
                out += model_summaries([name])
            except ModelkitError as exc:
                log.warning("search skips %s: %s", name, exc)
        return out


def _weights_word(info: dict) -> str:
    if info.get("too_large"):
        return TOO_LARGE
    if info["weights_on_disk"]:
        return "on this machine"
    return "download" if info["tags"] else "none"


def search_rows(models: Sequence[dict]) -> list[list]:
    return [
        [m["name"], m["family"], "" if m["params_m"] is None else m["params_m"], m["acc1"] or "",
         m["weights"], m.get("licence", "")]
        for m in models
    ]  # fmt: skip


def _fmt(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.3g}" for v in values)


def model_card(info: dict) -> str:
    """A markdown card: what the model is, what it eats, where its weights are, its levels."""
    acc = "n/a" if info.get("acc@1") is None else f"{info['acc@1']:.1f} %"
    gflops = "n/a" if info.get("gflops") is None else f"{info['gflops']:.2f}"
    size = "" if not info.get("file_size_mb") else f" ({info['file_size_mb']:.0f} MB)"
    if info["weights_on_disk"]:
        weights = "on this machine"
    elif info["tags"]:
        weights = f"not here: downloaded on first use{size}"
    else:
        weights = "none (random initialisation only)"
    tags = ", ".join(
        f"`{t}`" + (" (default)" if t == info["default_tag"] else "") for t in info["tags"]
    )
    c, h, w = info["input_size"]
    warning = [f"**⚠ Too large for this server.** {info['too_large']}", ""]
    lines = [
        f"### {info['name']}",
        *(warning if info.get("too_large") else []),
        f"**Family** {info['family']} · **Parameters** {info['params'] / 1e6:.2f} M · "
        f"**GFLOPs** {gflops} · **ImageNet top-1** {acc}",
        "",
        f"**Input** {c} × {h} × {w}{' (this size only)' if info.get('fixed_input_size') else ''}"
        f", {info.get('interpolation', '')}{_crop(info)} · "
        f"**mean** ({_fmt(info['mean'])}) · **std** ({_fmt(info['std'])})",
        "",
        f"**Pretrained tags** {tags or 'none'} · **Weights** {weights}",
        "",
        f"**Licence** {info.get('license') or 'not stated'}{_flag(info)}",
        "",
        *_source_lines(info),
        "| level | module | channels | stride |",
        "|---:|---|---:|---:|",
    ]
    lines += [
        f"| {lvl['index']} | `{lvl['module']}` | {lvl['channels']} | {lvl['reduction']} |"
        for lvl in info["feature_levels"]
    ]
    return "\n".join(lines)


def model_line(info: dict) -> str:
    """One line about a model for the model box: size, accuracy, where its weights are."""
    parts = []
    if info.get("params"):
        parts.append(f"{info['params'] / 1e6:.1f} M parameters")
    if info.get("acc@1") is not None:
        parts.append(f"{info['acc@1']:.1f} % right on ImageNet's photos")
    if info.get("tags") and info.get("num_classes") == 0:
        parts.append("a feature extractor (no classes: teach it yours)")
    weights = (
        "weights on this machine"
        if info["weights_on_disk"]
        else ("weights downloaded on first use" if info["tags"] else "no pretrained weights")
    )
    parts.append(weights)
    line = f"**{info['name']}** · " + " · ".join(parts)
    if info.get("too_large"):
        line += f"\n\n**⚠ Too large for this server.** {info['too_large']}"
    return line


def _crop(info: dict) -> str:
    crop = info.get("crop_pct")
    return f", crop {crop:.3g}" if crop else ""


def _flag(info: dict) -> str:
    note = info.get("license_note")
    return f" · **⚠ {note}**" if note else ""


def _source_lines(info: dict) -> list[str]:
    """Where the model comes from; for weights without a classifier, say so."""
    lines = []
    if info.get("source") == "timm":
        lines.append("**Source** timm (weights from the Hugging Face Hub, downloaded on first use)")
    if info.get("bands"):
        bands = ", ".join(info["bands"])
        lines.append(
            f"**Bands** {len(info['bands'])}, in this order: {bands}. Native multispectral "
            "weights: "
            "a file with these bands runs without any adaptation (pick them in this order under "
            "Image channels); the normalisation applies to the raw values."
        )
    if info.get("tags") and info.get("num_classes") == 0:
        lines.append(
            "**Feature extractor**: these weights have no ImageNet head, so there are no labels "
            "to predict; look at the feature maps, or set num_classes and train a head."
        )
    return [line + "\n" for line in lines]


def image_summary(image: ImageArray) -> str:
    """Markdown: what the reader found (format, layout, dtype, range, bands) and noticed."""
    low, high = image.value_range
    lines = [
        f"**{image.filename}** · {image.format.upper()} · {image.num_channels} channel"
        f"{'s' * (image.num_channels != 1)} × {image.height} × {image.width} · {image.dtype} · "
        f"values {low:.4g} to {high:.4g}",
        f"Stored as {tuple(image.original_shape)} ({image.axes}); "
        "read as channels × height × width.",
    ]
    if image.band_names:
        lines.append("Bands: " + ", ".join(f"{i} {n}" for i, n in enumerate(image.band_names)))
    if image.nan_count:
        lines.append(
            f"{image.nan_count} NaN values: they are replaced by each band's minimum before use."
        )
    lines += [f"- {note}" for note in image.notes]
    fits = suggestions(image.num_channels, image.band_names)
    if fits:
        lines.append(
            "- Weights pretrained on these bands exist: "
            + ", ".join(f"`{n}`" for n in fits)
            + ' (feature extractors; pick one under "Use weights" below to set the model, '
            "its tag and the channels in its band order)."
        )
    return "\n\n".join(lines[:3]) + ("\n\n" + "\n".join(lines[3:]) if lines[3:] else "")


def prediction_note(head_is_random: bool, num_classes: int, adaptations: Sequence[str]) -> str:
    """Markdown under the bar chart: whether the classes mean anything, and what was adapted."""
    lines = []
    if head_is_random:
        lines.append(
            f"**The classifier head is new** ({num_classes} classes, random weights): the classes "
            "have no names and the scores mean nothing until the model is trained. The feature "
            "maps still show what the pretrained layers see."
        )
    if adaptations:
        lines.append("**What was adapted**\n\n" + "\n".join(f"- {a}" for a in adaptations))
    return "\n\n".join(lines)


def level_summary(level: dict, shape: Sequence[int]) -> str:
    """One line: the level, its module, its shape and stride."""
    c, h, w = shape[-3:]
    return (
        f"**Level {level['index']}** · `{level['module']}` · {c} channels × {h} × {w} · "
        f"stride {level['reduction']}"
    )


def level_choice(level: dict) -> tuple[str, str]:
    """(label, value) of a feature level's checkbox: short enough that many fit on a line
    (a ViT has 24). The module's last name part stands for it unless that is a bare number."""
    last = level["module"].rsplit(".", 1)[-1]
    name = level["module"] if last.isdigit() else last
    label = f"{level['index']} · {name} ({level['channels']} ch, /{level['reduction']})"
    return label, str(level["index"])
