"""How many more labels, with known answers: where more data helps (Gaussian classes in 64
dimensions, 20 examples each) the curve says so; where the classes overlap in two dimensions
and 100 examples each already reach the best a line can do, it says more are unlikely to help."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from label_data import blobs

from modelkit.teach.curve import FLAT, estimate_curve, fit_power_law, predict
from modelkit.teach.fit import fit_probe


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _curve(x, y, seed):
    probe = fit_probe(x, y, seed=seed)
    return estimate_curve(x, y, C=probe.C, accuracy=probe.grid_accuracy[probe.grid.index(probe.C)],
                          seed=seed)  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_where_more_examples_help_it_says_so(seed):
    curve = _curve(*blobs(20, 64, 2.5, seed=seed), seed)
    # measured (seeds 0-2): 81.2 -> 85.3 %, 71.3 -> 81.0 %, 88.7 -> 94.8 %
    assert curve["helps"] and curve["expected"] >= curve["now"] + 0.03
    assert curve["low"] <= curve["expected"] <= curve["high"] + 1e-9
    assert curve["now"] == curve["points"][-1]["mean"]  # the head's own accuracy
    assert curve["more"] == 20 and curve["enough_points"]
    means = [p["mean"] for p in curve["points"]]
    assert means[-1] > means[0]  # the subsets learnt less
    json.dumps(curve)  # plain JSON types: it travels in the head's file


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_where_the_classes_overlap_more_examples_are_unlikely_to_help(seed):
    curve = _curve(*blobs(100, 2, 2.0, classes=2, seed=seed), seed)
    # measured (seeds 0-2): 63.5, 94.0 and 93.0 %, each flat within a point
    assert not curve["helps"] and curve["expected"] - curve["now"] < FLAT


def test_the_power_law_is_recovered_and_kept_under_one():
    n = np.array([5.0, 10, 20, 40])
    params = fit_power_law(n, 0.9 - 0.8 * n**-0.7)[0]
    assert np.allclose(params, [0.9, 0.8, 0.7], atol=0.03)
    capped = fit_power_law(n, [0.9, 0.99, 1.0, 1.0])[0]
    assert capped[0] <= 1 and predict(capped, 1000)[0] <= 1


def test_a_tiny_set_gives_too_few_points():
    x, y = blobs(3, 8, 6.0, classes=2)
    curve = estimate_curve(x, y, C=1.0, accuracy=1.0)
    assert not curve["enough_points"]  # 25 % and 50 % of 3 keep 2 each: one subset size
