"""Labelling on the page, as plain data (no gradio): the examples whose labels look wrong (cards,
relabel, remove), which images waiting for a class to label next (embedded with the taught
head's model, or the form's before any head), and in Batch which images to label next and an
image's look-alikes, from the table's embeddings.

    issue_cards(head, image_bytes, items) -> (issues, count)      cards(issues) -> gallery
    relabel(items, issues, chosen) -> (items, issues)     drop(items, issues, chosen) -> ...
    next_in_pool(items, pool, head, settings, n) -> Suggestions (indices into pool)
    next_in_batch(table, head, n) -> Suggestions (rows of the table)
    batch_cards(archive, rows, table, captions) -> gallery
"""

from __future__ import annotations

import numpy as np

from modelkit.app import teach_state, words
from modelkit.batches.similar import table_embeddings
from modelkit.errors import ConfigError
from modelkit.runtime.settings import RunSettings
from modelkit.teach.head import TrainedHead
from modelkit.teach.suggest import AUTO_MARGIN_PER_CLASS, Suggestions, suggest

SHOWN_ISSUES = 24
SUGGESTED = 8  # images suggested at a time
LOOK_ALIKES = 8
BATCH_NO_HEAD = ("These are typical of the groups of images in this folder. Run it with taught "
                 "classes, and the images they are least sure of come next.")  # fmt: skip


def _key(item: dict) -> list:
    return [item["file"], item["member"], item["name"]]


def issue_cards(head: TrainedHead, image_bytes, items: list[dict]) -> tuple[list[dict], int]:
    """The examples whose labels look wrong (at most SHOWN_ISSUES, each with its thumbnail and
    the key of its item), and how many there are in all (none for a head read from a file saved
    without its examples' probabilities)."""
    if head.oof_probabilities is None:
        return [], 0
    found = head.label_issues()
    issues = [{**issue, "key": _key(items[issue["index"]]),
               "thumb": teach_state.thumbnail(image_bytes[issue["index"]], issue["name"])}
              for issue in found[:SHOWN_ISSUES]]  # fmt: skip
    return issues, len(found)


def cards(issues: list[dict]) -> list[tuple[np.ndarray, str]]:
    return [(issue["thumb"], words.issue_caption(issue)) for issue in issues]


def chosen_issue(issues: list[dict], chosen) -> dict:
    if chosen is None or not 0 <= int(chosen) < len(issues):
        raise ConfigError("Click one of the examples that may be labelled wrong first.")
    return issues[int(chosen)]


def relabel(items: list[dict], issues: list[dict], chosen) -> tuple[list[dict], list[dict]]:
    """The chosen example moved to the class it looks like."""
    issue = chosen_issue(issues, chosen)
    moved = [{**it, "cls": issue["suggested"]} if _key(it) == issue["key"] else it
             for it in items]  # fmt: skip
    return moved, [i for i in issues if i is not issue]


def drop(items: list[dict], issues: list[dict], chosen) -> tuple[list[dict], list[dict]]:
    """The chosen example removed from the examples."""
    issue = chosen_issue(issues, chosen)
    return [it for it in items if _key(it) != issue["key"]], [i for i in issues if i is not issue]


def _teach_settings(settings: RunSettings, first) -> RunSettings:
    """The form's settings with the model's input following the examples (as Teach does)."""
    if settings.channels and max(settings.channels) >= first.num_channels:
        settings = settings.replace(channels=None)
    return settings.replace(in_chans=None).follow(first)


def next_in_pool(
    items: list[dict], pool: list[dict], head: TrainedHead | None, settings: RunSettings,
    n: int = SUGGESTED,
) -> Suggestions:  # fmt: skip
    """Which images waiting for a class to label next: the examples and the waiting images are
    embedded (cached), the examples count as labelled; with a head, its probabilities."""
    from modelkit.runtime.embeddings import embeddings

    if not pool:
        raise ConfigError("Add images that have no class yet first (image files, or a ZIP of "
                          "them), then ask which to label next.")  # fmt: skip
    images, blobs = teach_state.decoded(items + pool)
    views = "none"
    if head is not None:
        settings, views = head.settings, head.setup.get("views", "none")
    else:
        settings = _teach_settings(settings, images[0])
    emb = embeddings(images, settings, views=views, image_bytes=blobs)
    probabilities = None if head is None else head.probabilities(emb.vectors)[1]
    found = suggest(emb.vectors.mean(1), n, labelled=np.arange(len(items)),
                    probabilities=probabilities)  # fmt: skip
    return Suggestions(found.indices - len(items), found.strategy, found.notes)


def next_in_batch(table, head: TrainedHead | None, n: int = SUGGESTED) -> Suggestions:
    """Which images of a Batch table to label next: typical ones, or, with a head taught on
    enough examples per class, those it is least sure of (its probabilities)."""
    rows, vectors = table_embeddings(table)
    if not len(rows):
        raise ConfigError("No image of this batch could be used, so none can be suggested.")
    if head is None:
        found = suggest(vectors, n, strategy="typical")
        return Suggestions(rows[found.indices], found.strategy, [BATCH_NO_HEAD])
    if vectors.shape[1] != head.weight.shape[1]:
        raise ConfigError("This batch was run with another model than the taught classes; run "
                          "it with the taught classes first.")  # fmt: skip
    per_class = np.bincount(head.example_labels) if head.example_labels is not None else [0]
    strategy = "margin" if min(per_class) >= AUTO_MARGIN_PER_CLASS else "typical"
    found = suggest(vectors, n, strategy=strategy,
                    probabilities=head.probabilities(vectors[:, None])[1])  # fmt: skip
    return Suggestions(rows[found.indices], found.strategy, found.notes)


def batch_cards(archive: str, names: list[str], captions: list[str]) -> list:
    """Thumbnails of the named files of a Batch ZIP, with their captions."""
    from modelkit.batches.inputs import collect

    found = {item.name: item for item in collect(archive).items}
    return [(teach_state.thumbnail(found[name].load(), name), caption)
            for name, caption in zip(names, captions, strict=True) if name in found]  # fmt: skip
