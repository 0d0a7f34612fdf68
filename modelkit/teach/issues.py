"""Labels that look wrong: confident learning (Northcutt, Jiang and Chuang, JAIR 2021) on the
out-of-fold probabilities of a taught head's examples. Our own implementation of the method.

    find_label_issues(labels, probabilities, *, rank_by="self_confidence") -> LabelIssues
        .indices (most suspicious first), .suggested (a class per issue), .scores

1. Each class j gets a threshold t_j: the mean probability of j over the examples labelled j
   (how sure the model is, on average, of the examples it is told are j).
2. The confident joint C (K x K): an example labelled i counts at (i, j), where j is the most
   probable of the classes whose probability reaches their threshold (no count when none does).
3. Calibrated: each row of C scaled to the number of examples labelled i, rounded so the row
   keeps its total (largest remainders).
4. Pruned by noise rate: for every i != j, the C[i, j] examples labelled i with the largest margin
   p_j - p_i are flagged; an example whose most probable class is its own label is never flagged,
   and at least one example of every class is kept.
5. Ranked by ``rank_by``: "self_confidence" (p of the given label) or "normalized_margin"
   ((p_given - the largest other p + 1) / 2); both in [0, 1], low = suspicious, lowest first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelkit.errors import ConfigError

RANKINGS = ("self_confidence", "normalized_margin")


@dataclass
class LabelIssues:
    indices: np.ndarray  # (M,) int: flagged examples, most suspicious first
    suggested: np.ndarray  # (M,) int: the class the probabilities point to
    scores: np.ndarray  # (M,) float in [0, 1]: how well the given label fits (low first)
    confident_joint: np.ndarray  # (K, K) int: calibrated counts (given label, likely class)


def thresholds(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Per class: the mean probability of the class over the examples labelled with it."""
    k = probabilities.shape[1]
    sums = np.zeros(k)
    np.add.at(sums, labels, probabilities[np.arange(len(labels)), labels])
    counts = np.bincount(labels, minlength=k)
    return np.divide(sums, counts, out=np.ones(k), where=counts > 0)


def confident_joint(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """The calibrated confident joint: rows the given label, columns the likely class."""
    k = probabilities.shape[1]
    above = probabilities >= thresholds(labels, probabilities) - 1e-6
    confident = above.any(1)
    likely = np.where(above, probabilities, -1.0).argmax(1)
    joint = np.zeros((k, k))
    np.add.at(joint, (labels[confident], likely[confident]), 1)
    counts = np.bincount(labels, minlength=k)
    totals = joint.sum(1, keepdims=True)
    scaled = np.divide(joint * counts[:, None], totals, out=np.zeros_like(joint),
                       where=totals > 0)  # fmt: skip
    return np.stack([_round_keeping_total(row) for row in scaled])


def _round_keeping_total(row: np.ndarray) -> np.ndarray:
    """Whole numbers whose sum is the row's rounded sum (the largest remainders round up)."""
    floor = np.floor(row)
    short = int(round(row.sum() - floor.sum()))
    if short > 0:
        floor[np.argsort(floor - row)[:short]] += 1
    return floor.astype(np.int64)


def quality(labels: np.ndarray, probabilities: np.ndarray, rank_by: str) -> np.ndarray:
    """How well each given label fits, in [0, 1] (low: the label looks wrong)."""
    own = probabilities[np.arange(len(labels)), labels]
    if rank_by == "self_confidence":
        return own
    others = probabilities.copy()
    others[np.arange(len(labels)), labels] = -np.inf
    return (own - others.max(1) + 1) / 2


def find_label_issues(labels, probabilities, *, rank_by: str = "self_confidence") -> LabelIssues:
    """The examples whose given label the out-of-fold probabilities contradict.

    Args:
        labels: (N,) the given class of each example (0 .. K-1).
        probabilities: (N, K) out-of-fold probabilities (each row from a model that did not
            see that example).
        rank_by: "self_confidence" or "normalized_margin" (the score that orders the issues).

    Returns:
        LabelIssues: flagged indices (most suspicious first), suggested classes, scores.
    """
    if rank_by not in RANKINGS:
        raise ConfigError(f"rank_by={rank_by!r} is not one of {', '.join(RANKINGS)}.")
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or len(labels) != len(probabilities):
        raise ConfigError(f"Give one row of probabilities per label: {len(labels)} labels and "
                          f"probabilities of shape {probabilities.shape}.")  # fmt: skip
    joint = confident_joint(labels, probabilities)
    flagged = np.zeros(len(labels), bool)
    for i in range(probabilities.shape[1]):
        mine = np.flatnonzero(labels == i)
        budget = max(len(mine) - 1, 0)  # keep at least one example of every class
        for j in np.flatnonzero(joint[i]):
            if j == i or not budget:
                continue
            margin = probabilities[mine, j] - probabilities[mine, i]
            take = mine[np.argsort(-margin, kind="stable")[: min(joint[i, j], budget)]]
            budget -= int((~flagged[take]).sum())
            flagged[take] = True
    predicted = probabilities.argmax(1)
    flagged &= predicted != labels
    scores = quality(labels, probabilities, rank_by)
    order = np.flatnonzero(flagged)
    order = order[np.argsort(scores[order], kind="stable")]
    return LabelIssues(indices=order, suggested=predicted[order], scores=scores[order],
                       confident_joint=joint)  # fmt: skip
