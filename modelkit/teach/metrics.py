"""Honest numbers about a taught head, all from out-of-fold predictions (no image is scored by a
head that saw it), and the warnings a person should read before trusting them.

    report(y, oof_proba, fold_of, classes, names=None) -> dict with
        cv_accuracy, balanced_accuracy, confusion (K x K counts, rows true, columns predicted),
        per_class {class: {recall, precision, count}}, chance (share of the largest class),
        p_value (one-sided binomial test of the accuracy against chance), fold_accuracies,
        misclassified [{index, name, true, predicted, probability}], warnings [str]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import balanced_accuracy_score, confusion_matrix

FEW_EXAMPLES = 5  # a class with fewer gets a warning
UNEQUAL_RATIO = 3.0  # largest / smallest class above this gets a warning
CHANCE_P = 0.05  # accuracy not above chance at this level gets a warning


def class_warnings(counts: dict[str, int]) -> list[str]:
    """Warnings about the examples themselves: few per class, very unequal classes."""
    out = []
    few = [f"'{c}' ({n})" for c, n in counts.items() if n < FEW_EXAMPLES]
    if few:
        out.append(
            f"Few examples: {', '.join(few)}. With fewer than {FEW_EXAMPLES} examples a class's "
            "numbers rest on a handful of images; add more if you can."
        )
    largest, smallest = max(counts.values()), min(counts.values())
    if largest > UNEQUAL_RATIO * smallest:
        big = max(counts, key=counts.get)
        small = min(counts, key=counts.get)
        out.append(
            f"Very unequal classes: '{big}' has {largest} examples, '{small}' {smallest}. The "
            "head leans toward the large class; compare the accuracy with chance "
            f"({largest / sum(counts.values()):.0%}) and read the balanced accuracy."
        )
    return out


def report(
    y: np.ndarray,
    oof_proba: np.ndarray,
    fold_of: np.ndarray,
    classes: Sequence[str],
    names: Sequence[str] | None = None,
) -> dict:
    """Accuracy, balanced accuracy, confusion, per-class recall/precision, chance and warnings."""
    y = np.asarray(y)
    k, n = len(classes), len(y)
    predicted = oof_proba.argmax(1)
    right = predicted == y
    confusion = confusion_matrix(y, predicted, labels=list(range(k)))
    counts = confusion.sum(1)
    per_class = {}
    for i, name in enumerate(classes):
        said = confusion[:, i].sum()
        per_class[name] = {
            "recall": float(confusion[i, i] / counts[i]) if counts[i] else 0.0,
            "precision": float(confusion[i, i] / said) if said else 0.0,
            "count": int(counts[i]),
        }
    chance = float(counts.max() / n)
    accuracy = float(right.mean())
    p_value = float(binomtest(int(right.sum()), n, chance, alternative="greater").pvalue)
    warnings = class_warnings({c: int(counts[i]) for i, c in enumerate(classes)})
    if p_value > CHANCE_P:
        warnings.append(
            f"The accuracy ({accuracy:.0%}) is within noise of chance ({chance:.0%}): with "
            f"these examples it is no surer than guessing (binomial test p = {p_value:.2f}). "
            "Add more examples of each class, or try another model, other channels or scaling."
        )
    names = list(names) if names is not None else [f"example {i}" for i in range(n)]
    misclassified = [
        {"index": int(i), "name": names[i], "true": classes[y[i]],
         "predicted": classes[predicted[i]], "probability": float(oof_proba[i, predicted[i]])}
        for i in np.flatnonzero(~right)
    ]  # fmt: skip
    return {
        "cv_accuracy": accuracy,
        "balanced_accuracy": float(balanced_accuracy_score(y, predicted)),
        "confusion": confusion.astype(np.int64),
        "per_class": per_class,
        "chance": chance,
        "p_value": p_value,
        "fold_accuracies": [float(right[fold_of == f].mean()) for f in np.unique(fold_of)],
        "misclassified": misclassified,
        "warnings": warnings,
    }
