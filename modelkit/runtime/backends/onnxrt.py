"""ONNX Runtime: a CPU session over a graph file, as many threads as torch uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class OrtSession:
    """``run(x) -> list of arrays``; ONNX Runtime sessions are safe to call from many threads."""

    name = "onnxruntime"

    def __init__(self, path: Path, threads: int, cache_dir: Path | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only
        self._session = ort.InferenceSession(str(path), options,
                                             providers=["CPUExecutionProvider"])  # fmt: skip

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        return self._session.run(None, {"x": x})
