"""Compare 2 to 4 models (or setups of one model) on the same image: top-k side by side, the
labels they share, how much they agree, their time and size, and their feature maps at the
strides they have in common. No gradio here; the Compare tab and /compare call ``compare``.

    parse_entries(entries, base) -> list[FormRun]   "resnet18", "efficientnet_lite0 pretrained=no"
    compare(runs, image) -> (summary: dict of plain types, maps: [{"title", "maps"}])
"""

from __future__ import annotations

import itertools
import re

import numpy as np

from modelkit.app import runs
from modelkit.app.runs import FormRun
from modelkit.errors import ConfigError
from modelkit.images.limits import ImageArray
from modelkit.runtime.engine import features, predict
from modelkit.runtime.settings import RunSettings

FEWEST, MOST = 2, 4
OPTIONS = ("pretrained", "tag", "in_chans", "num_classes", "channels", "scaling")
MAX_STRIDES = 3  # the coarsest strides all models share


def _flag(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"pretrained={value!r}: write pretrained=yes or pretrained=no.")


def parse_entry(text: str, base: FormRun) -> FormRun:
    """'name key=value ...' over the base run (the form's); the tag stays with its model."""
    words = text.replace(",", " ").split() if "=" in text else text.split()
    if not words:
        raise ConfigError("An empty model entry was given; write a model name, e.g. resnet18.")
    name, options = words[0], {}
    for word in words[1:]:
        key, _, value = word.partition("=")
        if key not in OPTIONS or not value:
            raise ConfigError(f"'{word}' in '{text}': write key=value with a key among "
                              f"{', '.join(OPTIONS)}.")  # fmt: skip
        options[key] = value
    if "channels" in options:
        options["channels"] = options["channels"].replace(";", ",").replace("/", ",")
    fields = base.settings.to_dict() | {"model": name}
    if name != base.settings.model:
        fields["tag"] = ""
    fields |= options
    if "pretrained" in options:
        fields["pretrained"] = _flag(options["pretrained"])
    return FormRun(RunSettings.from_form(fields), base.top_k)


def parse_entries(entries, base: FormRun) -> list[FormRun]:
    """2 to 4 setups from a list of entries or one text (entries split by ';' or new lines)."""
    if isinstance(entries, str):
        entries = re.split(r"[;\n]+", entries)
    items = [str(e).strip() for e in entries or [] if str(e).strip()]
    if not FEWEST <= len(items) <= MOST:
        given = f"{len(items)} {'was' if len(items) == 1 else 'were'} given"
        raise ConfigError(f"Pick {FEWEST} to {MOST} models (or setups of one model) to compare; "
                          f"{given}.")  # fmt: skip
    return [parse_entry(item, base) for item in items]


def title(run: FormRun, base: FormRun | None = None) -> str:
    """The run's model name and what sets it apart from the form's (``base``)."""
    setup = run.settings
    notes = [] if setup.pretrained else ["random weights"]
    reference = base.settings if base is not None else RunSettings()
    for key in ("in_chans", "num_classes", "channels", "scaling"):
        value = getattr(setup, key)
        if value != getattr(reference, key):
            notes.append(f"{key}={value}")
    return setup.name + (f" ({', '.join(notes)})" if notes else "")


def _strides(model) -> dict[int, dict]:
    """stride -> the deepest level at that stride."""
    out: dict[int, dict] = {}
    for level in model.feature_info.get_dicts():
        out[int(level["reduction"])] = level
    return out


def _agreement(tops: list[list[str]]) -> dict:
    pairs = list(itertools.combinations(range(len(tops)), 2))
    top1 = [t[0] for t in tops]
    same = sum(top1[a] == top1[b] for a, b in pairs)
    overlap = [len(set(tops[a]) & set(tops[b])) / len(set(tops[a]) | set(tops[b]))
               for a, b in pairs]  # fmt: skip
    return {"all_top1_agree": len(set(top1)) == 1, "top1_pairs_agreeing": f"{same}/{len(pairs)}",
            "top1_agreement": same / len(pairs),
            "mean_topk_overlap": float(np.mean(overlap))}  # fmt: skip


def compare(
    setups: list[FormRun], image: ImageArray, base: FormRun | None = None
) -> tuple[dict, list[dict]]:
    """Run every setup on the image; a plain-types summary and the maps for the figures."""
    models, nets = [], []
    for run in setups:
        # no result cache: the times compared are of a real forward pass each
        result = predict(image, run.settings, top_k=run.top_k, use_result_cache=False)
        net = runs.cached_model(run.settings)
        nets.append(net)
        models.append({
            "title": title(run, base), "model": run.settings.name,
            "setup": run.settings.to_dict(), "predictions": runs.top_rows(result),
            "params": int(sum(p.numel() for p in net.parameters())),
            "forward_ms": round(float(result.timings.forward_ms), 1),
            "total_ms": round(float(result.timings.total_ms), 1),
            "head_is_random": bool(result.head_is_random),
        })  # fmt: skip
    seen: dict[str, int] = {}
    for m in models:  # two setups that print alike still need two names
        seen[m["title"]] = seen.get(m["title"], 0) + 1
        if seen[m["title"]] > 1:
            m["title"] += f" #{seen[m['title']]}"
    tops = [[r["label"] for r in m["predictions"]] for m in models]
    counts: dict[str, int] = {}
    for labels in tops:
        for label in set(labels):
            counts[label] = counts.get(label, 0) + 1
    per_model = [_strides(net) for net in nets]
    common = sorted(set.intersection(*(set(s) for s in per_model)))[-MAX_STRIDES:]
    maps = []
    for run, m, strides in zip(setups, models, per_model, strict=True):
        picked = tuple(int(strides[s]["index"]) for s in common)
        levels = features(image, run.settings, out_indices=picked).levels if picked else []
        by_index = {int(lv["index"]): lv for lv in levels}
        m["strides"] = {str(s): {"level": int(strides[s]["index"]),
                                 "module": strides[s]["module"],
                                 "shape": list(by_index[int(strides[s]["index"])]["array"].shape)}
                        for s in common}  # fmt: skip
        maps.append({"title": m["title"], "maps": {
            s: np.abs(by_index[int(strides[s]["index"])]["array"]).mean(axis=0) for s in common
        }})  # fmt: skip
    summary = {
        "models": models,
        "shared_labels": sorted(label for label, n in counts.items() if n > 1),
        "agreement": _agreement(tops),
        "strides": common,
    }
    return summary, maps


def table_rows(summary: dict) -> list[list]:
    """One row per model: title, top-1 (probability), parameters (M), forward and total ms."""
    rows = []
    for m in summary["models"]:
        best = m["predictions"][0]
        rows.append([m["title"], f"{best['label']} ({best['probability']:.2f})",
                     round(m["params"] / 1e6, 2), m["forward_ms"], m["total_ms"]])  # fmt: skip
    return rows


def agreement_text(summary: dict) -> str:
    """One sentence on whether the models agree, then the details."""
    a, models = summary["agreement"], summary["models"]
    tops = [(m["title"], m["predictions"][0]["label"]) for m in models]
    if a["all_top1_agree"]:
        verdict = f"All {len(models)} models agree: **{tops[0][1]}**."
    else:
        verdict = "The models disagree: " + "; ".join(f"{t} says **{lab}**" for t, lab in tops)
        verdict += "."
    shared = ", ".join(summary["shared_labels"]) or "none"
    return (f"{verdict}\n\nTop-1 agreement in {a['top1_pairs_agreeing']} pairs; mean overlap of "
            f"the top-k lists {a['mean_topk_overlap']:.0%}; labels in more than one top-k: "
            f"{shared}.")  # fmt: skip
