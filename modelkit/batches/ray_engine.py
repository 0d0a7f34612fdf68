"""The Ray engine: the same per-batch work as the local engine (``extract.Extractor``), run by
Ray Data on a cluster. Ray is imported only here, and only when this engine is asked for.

    read_binary_files(paths, include_paths=True)        files as bytes (Ray's image reader uses
                                                         Pillow: no multi-band TIFF)
      -> map_batches(Extractor, compute=ActorPoolStrategy(size=n), batch_size=...,
                     num_gpus=1 per actor when the cluster has GPUs)   one model per actor
      -> write_parquet(OUT.parts/ray-...)                 then one part, in input order

Run from a shell with ``--engine ray``: it joins the cluster in RAY_ADDRESS (``ray job submit``
sets it) or the one ``ray start`` made on this machine, else starts a local one. The files must be
readable by every node (a shared folder); a ZIP is read here and its images are shipped.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from modelkit.batches.extract import Extractor
from modelkit.batches.inputs import Item
from modelkit.batches.table import schema
from modelkit.errors import ConfigError

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds modelkit/


def start_ray():
    """Join the cluster (RAY_ADDRESS / ``ray start``) or start a local one that can import
    modelkit from this checkout."""
    try:
        import ray
    except ImportError:
        raise ConfigError("The Ray engine needs Ray: pip install -r requirements-ray.txt "
                          "(or use --engine local).") from None  # fmt: skip
    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):
            ray.init()  # a submitted job: its runtime_env (--working-dir) already holds modelkit
        else:
            path = os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH"))
                                   if p)  # fmt: skip
            env = {k: v for k, v in os.environ.items() if k.startswith(("MODELKIT_", "HF_"))}
            ray.init(runtime_env={"env_vars": {**env, "PYTHONPATH": path}})
    return ray


def _dataset(ray, todo: list[Item]):
    if all(item.path for item in todo):
        return ray.data.read_binary_files([item.path for item in todo], include_paths=True)
    # a ZIP's members (or bytes given in memory): shipped through the object store
    return ray.data.from_items([{"path": item.name, "bytes": item.load()} for item in todo])


def run_ray(
    settings,
    todo: list[Item],
    scratch: Path,
    options: dict,
    batch_size: int,
    workers: int | None,
    sink: Callable[[pa.Table], None],
    step: Callable[[int], None],
) -> None:
    """Rows of ``todo`` computed on the cluster (``settings``: a RunSettings), handed to
    ``sink`` in input order as one part. Ray writes its files under ``scratch`` (a folder every
    node can write to), removed after."""
    ray = start_ray()
    from ray.data import ActorPoolStrategy, DataContext

    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    size = workers or (gpus if gpus else max(1, cpus // 2))
    names = {item.path: item.name for item in todo if item.path}
    DataContext.get_current().execution_options.preserve_order = True
    rows = _dataset(ray, todo).map_batches(
        Extractor, fn_constructor_args=(settings,),
        fn_constructor_kwargs={**options, "names": names},
        compute=ActorPoolStrategy(size=size), batch_size=batch_size, batch_format="pyarrow",
        **({"num_gpus": 1} if gpus else {}),
    )  # fmt: skip
    target = scratch / f"ray-{uuid.uuid4().hex[:12]}"
    try:
        rows.write_parquet(str(target))
        table = pq.read_table(target, schema=schema(options["what"]))
        order = {item.name: i for i, item in enumerate(todo)}
        index = pa.array([order[name] for name in table.column("file").to_pylist()])
        sink(table.take(pc.sort_indices(index)))
        step(table.num_rows)
    finally:
        shutil.rmtree(target, ignore_errors=True)
