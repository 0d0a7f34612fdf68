"""The Ray engine for scene maps: windows spread over actors, assembled on the driver.

Each actor opens the scene itself (a path every node can read, or the file's bytes / the array
shipped once through the object store), builds the model once (``RunSpec.build``) and turns
windows into ``WindowResult``s: one small vector per tile. The driver keeps at most
``IN_FLIGHT`` windows per actor outstanding and blends each result as it arrives, so its memory
is the map's, whatever the scene's size. Ray is imported only here, when this engine is asked
for; the cluster is joined or started as for batches (``batches.ray_engine.start_ray``).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from modelkit.batches.ray_engine import start_ray
from modelkit.scenes.run import RunSpec
from modelkit.scenes.worker import MapPlan, WindowResult

IN_FLIGHT = 2


class MapActor:
    """One model and one open scene; ``process(window)`` -> WindowResult."""

    def __init__(self, source, spec: RunSpec, plan: MapPlan) -> None:
        from modelkit.scenes.windows import open_scene
        from modelkit.scenes.worker import Worker

        self.worker = Worker(open_scene(source), spec.build(), plan)

    def process(self, window) -> WindowResult:
        return self.worker.process(window)


def run_ray(
    source,
    spec: RunSpec,
    plan: MapPlan,
    windows: list,
    sink: Callable[[WindowResult], None],
    workers: int | None = None,
) -> None:
    """Every window computed by a pool of actors; each result handed to ``sink`` on arrival."""
    ray = start_ray()
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    size = max(1, min(len(windows), workers or (gpus if gpus else max(1, cpus // 2))))
    if isinstance(source, str | os.PathLike):
        shipped = os.fspath(source)  # read by each actor from the shared path
    else:
        shipped = ray.put(source)  # bytes or an array, stored once
    remote = ray.remote(num_gpus=1 if gpus else 0, num_cpus=1)(MapActor)
    actors = [remote.remote(shipped, spec, plan) for _ in range(size)]
    queue = list(windows)
    pending: dict = {}
    try:
        while queue or pending:
            for actor in actors:
                while queue and sum(1 for a in pending.values() if a is actor) < IN_FLIGHT:
                    pending[actor.process.remote(queue.pop(0))] = actor
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                pending.pop(ref)
                sink(ray.get(ref))
    finally:
        for actor in actors:
            ray.kill(actor)
