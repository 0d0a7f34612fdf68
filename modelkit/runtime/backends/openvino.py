"""OpenVINO: a graph file compiled for this CPU in float32, its compiled blob cached on disk.

Only ``Core.compile_model`` is used: it reads the ONNX file itself and sends nothing anywhere
(OpenVINO's telemetry lives in its converter tools, which this module never imports).
"""

from __future__ import annotations

import queue
from pathlib import Path

import numpy as np


class OvSession:
    """``run(x) -> list of arrays``; one infer request per concurrent caller (from a pool)."""

    name = "openvino"

    def __init__(self, path: Path, threads: int, cache_dir: Path | None = None) -> None:
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": int(threads), "INFERENCE_PRECISION_HINT": "f32",
                  "PERFORMANCE_HINT": "LATENCY"}  # fmt: skip
        if cache_dir is not None:
            config["CACHE_DIR"] = str(cache_dir)
        self._compiled = core.compile_model(str(path), "CPU", config)
        self._requests: queue.SimpleQueue = queue.SimpleQueue()

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        try:
            request = self._requests.get_nowait()
        except queue.Empty:
            request = self._compiled.create_infer_request()
        try:
            results = request.infer([x])
            return [np.array(results[out], copy=True) for out in self._compiled.outputs]
        finally:
            self._requests.put(request)
