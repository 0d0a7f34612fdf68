"""Where to label next, with known answers: labels chosen by ``suggest`` raise accuracy at least
as much as the same number of random picks (averaged over seeds; bench/bench_label.py reports
the gains), suggestions keep apart on a grid and in embedding space, and bad input is said in
words."""

from __future__ import annotations

import numpy as np
import pytest
from label_data import active_rounds, clustered, digits

from modelkit.errors import ConfigError
from modelkit.teach.suggest import AUTO_MARGIN_PER_CLASS, NO_HEAD, normalised, suggest

SEEDS = range(3)


def _mean(data, strategy, budgets):
    return np.mean([active_rounds(*data(seed), strategy, budgets, seed=seed) for seed in SEEDS],
                   axis=0)  # fmt: skip


def test_typical_picks_beat_random_ones_on_clustered_embeddings():
    typical, random = (_mean(clustered, s, [12]) for s in ("typical", "random"))
    # measured (4 seeds, 10 labels): typical 95 %, random 69 %
    assert typical[0] >= random[0] + 0.1


def test_typical_picks_beat_random_ones_on_digits():
    data = lambda seed: digits()  # noqa: E731 - the same items; the seed changes the picks
    typical, random = (_mean(data, s, [10, 20]) for s in ("typical", "random"))
    # measured (3 seeds): typical 69 % and 83 %, random 41 % and 59 %
    assert (typical >= random + 0.1).all()


@pytest.mark.slow
def test_margin_picks_are_no_worse_than_random_ones_once_the_head_is_decent():
    data = lambda seed: digits()  # noqa: E731
    margin, random = (_mean(data, s, [100, 150]) for s in ("margin", "random"))
    # measured (3 seeds) at 150 labels: margin 95.7 %, random 93.3 %, typical 94.9 %
    assert margin[1] >= random[1] - 0.005


def test_without_a_head_only_typical_items_are_suggested_with_a_note():
    x, _ = clustered(0)
    for strategy in ("auto", "margin"):
        out = suggest(x, 5, strategy=strategy)
        assert out.strategy == "typical" and out.notes == [NO_HEAD] and len(out.indices) == 5


def test_auto_turns_to_the_margin_once_every_class_has_labels_enough():
    x, y = clustered(0)
    probabilities = np.eye(4)[y] * 0.5 + 0.125
    few = np.flatnonzero(y == 0)[:AUTO_MARGIN_PER_CLASS]
    many = np.concatenate([np.flatnonzero(y == c)[:AUTO_MARGIN_PER_CLASS] for c in range(4)])
    assert suggest(x, 3, labelled=few, probabilities=probabilities).strategy == "typical"
    assert suggest(x, 3, labelled=many, probabilities=probabilities).strategy == "margin"


def test_typical_items_come_from_clusters_the_labels_do_not_cover():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 16))
    mode = np.repeat(np.arange(6), [80, 60, 40, 70, 50, 30])
    x = (centres[mode] + 0.1 * rng.normal(size=(len(mode), 16))).astype(np.float32)
    labelled = np.concatenate([np.flatnonzero(mode == m)[:5] for m in range(3)])
    picks = suggest(x, 3, labelled=labelled, strategy="typical").indices
    assert sorted(mode[picks].tolist()) == [3, 4, 5]  # one of each region without a label
    assert mode[picks[0]] == 3  # the largest first
    own = x[mode == 3]  # and the pick is a typical member, near its region's centre
    assert np.linalg.norm(x[picks[0]] - own.mean(0)) < np.median(
        np.linalg.norm(own - own.mean(0), axis=1)
    )


def test_margin_picks_are_the_least_certain_and_spread_out():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 8)).astype(np.float32)
    top = rng.uniform(0.5, 1.0, 400)
    probabilities = np.stack([top, 1 - top], 1)
    picks = suggest(x, 10, probabilities=probabilities, strategy="margin", min_distance=0).indices
    assert set(picks) == set(np.argsort(top)[:10])  # no spreading asked: the 10 least certain
    grid = np.stack(np.divmod(np.arange(400), 20), 1)  # a 20 x 20 map
    spread = suggest(x, 10, probabilities=probabilities, strategy="margin", positions=grid,
                     min_cells=3, min_distance=0.5).indices  # fmt: skip
    cells = grid[spread]
    gaps = np.abs(cells[:, None] - cells[None]).max(-1) + np.eye(10, dtype=int) * 99
    assert gaps.min() >= 3 and len(spread) == 10
    unit = normalised(x[spread])
    distances = 1 - unit @ unit.T + np.eye(10) * 9
    assert distances.min() >= 0.5


def test_typical_picks_keep_apart_on_the_grid():
    x, _ = clustered(2)
    grid = np.stack(np.divmod(np.arange(len(x)), 40), 1)
    picks = suggest(x, 12, strategy="typical", positions=grid, min_cells=2).indices
    cells = grid[picks]
    gaps = np.abs(cells[:, None] - cells[None]).max(-1) + np.eye(len(picks), dtype=int) * 99
    assert gaps.min() >= 2


def test_labelled_and_unusable_items_are_never_suggested():
    x, _ = clustered(0)
    x[5] = np.nan
    labelled = np.arange(0, 200)
    for strategy in ("typical", "random"):
        picks = suggest(x, 30, labelled=labelled, strategy=strategy,
                        candidates=np.arange(300)).indices  # fmt: skip
        assert len(picks) == 30 and set(picks) <= set(range(200, 300))
    assert len(suggest(x, 5, labelled=np.ones(len(x), bool)).indices) == 0


@pytest.mark.parametrize(
    "kwargs, words",
    [({"strategy": "best"}, "strategy='best' is not one of"),
     ({"labelled": [10_000]}, "labelled: an index outside"),
     ({"positions": np.zeros((3, 2))}, "positions: give (row, col) per item"),
     ({"probabilities": np.zeros((3, 2))}, "one row of probabilities per item")],
)  # fmt: skip
def test_bad_input_is_said_in_words(kwargs, words):
    x, _ = clustered(0)
    kwargs.setdefault("probabilities", np.full((len(x), 2), 0.5))
    with pytest.raises(ConfigError) as error:
        suggest(x, 3, strategy=kwargs.pop("strategy", "margin"), **kwargs)
    assert words in str(error.value)
