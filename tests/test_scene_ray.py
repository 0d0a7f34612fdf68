"""The Ray engine for scene maps (a local Ray with 2 CPUs, started once): windows computed by
actors and blended on the driver give the local engine's map, from a path and from bytes."""

from __future__ import annotations

import numpy as np
import pytest
from scene_data import ROOT, SCENE, bands_head

import modelkit
from modelkit.scenes import api

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():
    env = {"PYTHONPATH": str(ROOT), "MODELKIT_OFFLINE": "1"}
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": env})
    yield
    ray.shutdown()


def test_ray_maps_equal_the_local_map(local_ray, monkeypatch, tmp_path):
    monkeypatch.setattr(api, "WINDOW_BYTES", 13 * 4 * 200 * 200)  # several windows to spread
    head = bands_head()
    local = modelkit.map_scene(SCENE, head=head)
    assert local.timings["windows"] >= 4
    for source in (SCENE, SCENE.read_bytes()):
        seen: list = []
        on_ray = modelkit.map_scene(source, head=head, engine="ray", workers=2,
                                    progress=lambda d, t, seen=seen: seen.append(d))  # fmt: skip
        np.testing.assert_allclose(on_ray.probabilities, local.probabilities, atol=1e-6)
        assert np.array_equal(on_ray.class_map, local.class_map)
        assert seen[-1] == local.timings["windows"] and on_ray.transform == local.transform
