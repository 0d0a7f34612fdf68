"""The Ray engine (a local Ray with 2 CPUs, started once): its output equals the local engine's,
row for row, for a folder and for a ZIP, and it resumes like the local engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from batch_data import make_folder, zip_folder

import modelkit

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
OPTIONS = dict(pretrained=True, use_result_cache=False, batch_size=4)


@pytest.fixture(scope="module")
def local_ray():
    env = {"PYTHONPATH": str(ROOT), "MODELKIT_OFFLINE": "1"}
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": env})
    yield
    ray.shutdown()


def same_rows(a, b) -> None:
    for column in ("file", "folder", "labels", "error"):
        assert a.column(column).to_pylist() == b.column(column).to_pylist(), column
    for x, y in zip(a.column("embedding").to_pylist(), b.column("embedding").to_pylist(),
                    strict=True):  # fmt: skip
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_allclose(x, y, atol=1e-5)  # batches may be cut differently
    for x, y in zip(a.column("probabilities").to_pylist(), b.column("probabilities").to_pylist(),
                    strict=True):  # fmt: skip
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_allclose(x, y, atol=1e-5)


def test_ray_rows_equal_the_local_rows(local_ray, tmp_path):
    folder = make_folder(tmp_path / "images")
    local = modelkit.batch(folder, "efficientnet_lite0", out=tmp_path / "local.parquet", **OPTIONS)
    on_ray = modelkit.batch(folder, "efficientnet_lite0", out=tmp_path / "ray.parquet",
                            engine="ray", **OPTIONS)  # fmt: skip
    assert (on_ray.computed, on_ray.errors) == (local.computed, local.errors) == (9, 3)
    same_rows(on_ray.table(), local.table())
    assert not (tmp_path / "ray.parquet.parts").exists()
    # a ZIP's images are shipped to the actors; a rerun has nothing left to do
    zipped = modelkit.batch(zip_folder(folder, tmp_path / "images.zip"), "efficientnet_lite0",
                            out=tmp_path / "zip.parquet", engine="ray", **OPTIONS)  # fmt: skip
    same_rows(zipped.table(), local.table())
    again = modelkit.batch(folder, "efficientnet_lite0", out=tmp_path / "ray.parquet",
                           engine="ray", **OPTIONS)  # fmt: skip
    assert (again.already_done, again.computed) == (9, 0)
