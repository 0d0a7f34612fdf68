"""What the page says to a person who does not program: one sentence per result, a caution where a
model's labels mean little, and errors in the page's own words. No gradio here.

    prediction_sentence(labels, probabilities) -> str       "It looks most like a tiger cat ..."
    caution(image, model_info) -> str                        "" or why its labels mean little
    teach_sentence(head) -> str                              "Right on 78 of every 100 ..."
    batch_sentence(total, errors, skipped, head_classes) -> str
    curve_sentence(curve) -> str                             "About 20 more examples per class ..."
    issues_title(count, shown) -> str;  issue_caption(issue) -> str
    suggestion_sentence(strategy, count, notes) -> str       which to label next, and why
    page_error(error) -> str                                 a ModelkitError for the page

The library keeps its exact messages (``str(error)``, with setting names such as
``in_chans=3``) for programmers; ``page_error`` rewrites them for the page: each setting by its
label on the page, lists without brackets, and what to do where the library names code.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from modelkit.errors import WeightsUnavailableError
from modelkit.images.limits import ImageArray

# setting name -> its label on the page (Model settings), for errors shown there
LABELS = {
    "in_chans": "Input channels", "channels": "Image channels", "num_classes": "Number of classes",
    "out_indices": "Feature levels", "top_k": "Top-k", "top-k": "Top-k", "scaling": "Scaling",
    "precision": "Precision", "device": "Device", "pretrained": "Pretrained weights",
    "tag": "Weights tag", "in_chans_init": "Extra-channel filters", "steps": "Steps",
    "rgb_channels": "RGB channels", "global_pool": "Pooling", "crop_mode": "Crop",
    "crop_pct": "Crop share", "method": "Method", "baseline": "Baseline", "layer": "Layer",
    "augment": "Views", "batch_size": "Batch size", "model": "Model", "target": "Target",
}  # fmt: skip
_SETTING = re.compile(
    r"\b(" + "|".join(map(re.escape, LABELS)) + r")="  # a setting's name, then its value:
    r"('[^']*'|\[[^\]]*\]|\([^)]*\)|[^\s,;)]+?)(?=[\s,;)]|\.?$|\.\s)"  # quoted, listed or bare
)
_LIST = re.compile(r"\[([^\]]*)\]")


def page_error(error: Exception) -> str:
    """The message a page shows for a user's mistake: no code syntax, the page's own words."""
    if isinstance(error, WeightsUnavailableError):
        return (
            "These weights are not on this server, and it cannot download them now (it is "
            "offline, or the download failed). Open Model settings and pick another weights "
            "tag, or a model whose weights say 'on this machine'."
        )
    text = str(error)
    text = _SETTING.sub(lambda m: f"{LABELS[m.group(1)]} {_value(m.group(2))}", text)
    text = _LIST.sub(lambda m: m.group(1), text)
    return text.replace("MODELKIT_OFFLINE=1", "the server is offline")


def _value(value: str) -> str:
    value = value.strip()
    if value[:1] in "[(" and value[-1:] in "])":
        value = value[1:-1]
    return value.strip("'") or "empty"


def percent(p: float) -> str:
    return f"{100 * p:.0f} %" if p >= 0.01 else f"{100 * p:.1f} %"


def prediction_sentence(labels: Sequence[str], probabilities: Sequence[float]) -> str:
    """One sentence for a top-k answer."""
    if not labels:
        return "No answer: the model gave no classes."
    first = f"It looks most like **{labels[0]}** ({percent(probabilities[0])})"
    if len(labels) > 1:
        first += f", then {labels[1]} ({percent(probabilities[1])})"
    return first + "."


def caution(image: ImageArray, knows_photos: bool) -> str:
    """'' or why a model that knows everyday photos (ImageNet's classes) says little here."""
    if not knows_photos:
        return ""
    kind = ""
    if image.num_channels > 4:
        kind = f"{image.num_channels}-band"
    elif image.num_channels == 1:
        kind = "single-channel"
    elif image.dtype not in ("uint8", "bool"):
        kind = f"{image.dtype}"
    if not kind:
        return ""
    return (
        f"⚠ This model knows everyday photos; on a {kind} image such as this one its labels "
        "mean little. Teach it your classes, or map the scene, for answers about your data."
    )


def teach_sentence(head) -> str:
    """The taught head's honest accuracy in one sentence (out of fold, beside guessing)."""
    right = round(100 * head.cv_accuracy)
    guess = round(100 * head.chance)
    verdict = ""
    if head.cv_accuracy <= head.chance + 0.05:
        verdict = " That is about as good as guessing: it has not learnt your classes."
    baseline = (head.fit or {}).get("baseline")
    beside = ""
    if baseline:  # multi-band examples: band statistics alone, on the same folds
        beside = f" Band statistics alone: {round(100 * baseline['cv_accuracy'])}."
    return (
        f"Right on **{right} of every 100** examples it had not seen (guessing would get "
        f"{guess}).{verdict}{beside}"
    )


def batch_sentence(total: int, errors: int, skipped: int, classes: Sequence[str] | None) -> str:
    """What a batch did, in one sentence."""
    if total == 0:
        left = f" ({skipped} other file{'s' * (skipped != 1)} left out)" if skipped else ""
        return (
            f"This ZIP holds no images that can be read (PNG, JPEG, TIFF, NPY ...){left}: "
            "nothing was run. Upload a ZIP of images."
        )
    done = total - errors
    what = f"the taught classes ({', '.join(classes)})" if classes else "the model's own classes"
    text = f"Labelled **{done} of {total} images** with {what}."
    if errors:
        text += f" {errors} could not be used: the table says why."
    return text


def explain_sentence(method: str, label: str, importance: Sequence[float],
                     bands: Sequence[str]) -> str:  # fmt: skip
    """What an explanation says, in one sentence."""
    if method in ("gradcam", "integrated_gradients"):
        return (f"The bright areas of the map are where the model looked for **{label}**; the "
                "bars say how much each band counted.")  # fmt: skip
    if not len(importance):
        return f"Nothing to say about **{label}**."
    top = max(range(len(importance)), key=lambda i: importance[i])
    if importance[top] <= 0:
        return (f"No single band carries **{label}**: taking any one away does not lower its "
                "score.")  # fmt: skip
    return (f"The answer **{label}** rests most on **{bands[top]}**: without it, the score falls "
            "the most.")  # fmt: skip


def curve_sentence(curve: dict) -> str:
    """What more examples would give, from the head's learning curve ('' when there is none)."""
    if not curve:
        return ""
    if not curve.get("enough_points"):
        return "There are too few examples to tell whether more would help."
    if not curve["helps"]:
        return (f"More examples of these classes are unlikely to help much (about "
                f"{percent(curve['expected'])} with twice as many). If that is not enough, try "
                "another model, other bands, or classes that differ more.")  # fmt: skip
    more = curve["more"]
    return (f"About **{more} more example{'s' * (more != 1)} per class** would bring it to about "
            f"**{percent(curve['expected'])}** (likely between {percent(curve['low'])} and "
            f"{percent(curve['high'])}).")  # fmt: skip


def single_example_warning(classes: Sequence[str]) -> str:
    """Why Train waits: classes with one example."""
    listed = ", ".join(f"'{c}'" for c in classes)
    return (f"{listed} {'has' if len(classes) == 1 else 'have'} one example only: add at least "
            "one more (five or more is better), or remove the class. Teaching waits until "
            "then.")  # fmt: skip


def issues_title(count: int, shown: int) -> str:
    """The heading of the gallery of examples whose labels look wrong."""
    if not count:
        return "No example looks labelled wrong."
    what = f"{count} example{'s' * (count != 1)} may be"
    more = f", showing {shown}" if shown < count else ""
    return (f"{'These' if count > 1 else 'This'} {what} labelled wrong (its class ► the class "
            f"it looks like{more})")  # fmt: skip


def issue_caption(issue: dict) -> str:
    """One example whose label looks wrong: its class ► the class it looks like."""
    return f"{issue['given']} ► {issue['suggested']}"


WHY_THESE = {
    "typical": "they are typical of groups of images your examples do not cover yet",
    "margin": "the taught classes are least sure about them (they sit between two classes)",
    "random": "they were picked at random",
}


def suggestion_sentence(
    strategy: str, count: int, notes: Sequence[str] = (), then: str = "Click one, then give it "
    "a class."
) -> str:  # fmt: skip
    """Which images to label next, why these, and what to do (``then``)."""
    if not count:
        return "Nothing to suggest: every image already has a class."
    text = (f"Label {'these' if count > 1 else 'this'} **{count} image{'s' * (count != 1)}** "
            f"next: {WHY_THESE[strategy]}. {then}")  # fmt: skip
    return text + "".join(f"\n- {note}" for note in notes)


def map_sentence(area: Sequence[dict]) -> str:
    """What covers the scene, largest first, in one sentence."""
    rows = sorted((r for r in area if r["cells"]), key=lambda r: -r["fraction"])
    if not rows:
        return "The map has no cells with data."

    def part(row: dict) -> str:
        km2 = f" ({row['km2']:,.1f} km²)" if row.get("km2") is not None else ""
        return f"{row['class']} {percent(row['fraction'])}{km2}"

    first = rows[0]
    rest = ", ".join(part(r) for r in rows[1:])
    km2 = f" ({first['km2']:,.1f} km²)" if first.get("km2") is not None else ""
    return (f"**{first['class']}** covers {percent(first['fraction'])} of the scene{km2}"
            + (f"; then {rest}." if rest else "."))  # fmt: skip
