"""Compiled CPU backends: a model's output exported to ONNX, compiled by ONNX Runtime or
OpenVINO, checked against torch before it serves, and kept on disk across restarts.

    compiled_forward(model, *, model_id, output, example, backend=None, precision="fp32",
                     calibration=(), store=None) -> Runner   (call it: runner(x))
    BACKENDS, default_backend(), check_backend(name), available_backends()

Modules: ``names`` (the setting, versions, CPU flags), ``outputs`` (what a graph computes),
``export`` (torch -> ONNX), ``store`` (folders on disk, LRU), ``onnxrt`` and ``openvino`` (the
runtimes), ``check`` (the probe), ``graphs`` (export, load, probe one graph), ``choose`` (auto's
timing and the background worker), ``quantize`` (int8), ``runner`` (serving).
The runtimes are imported only when a graph is loaded: without them, everything runs on torch.
"""

from modelkit.runtime.backends.names import (
    BACKENDS,
    available_backends,
    check_backend,
    default_backend,
)
from modelkit.runtime.backends.runner import Runner, compiled_forward

__all__ = ["BACKENDS", "Runner", "available_backends", "check_backend", "compiled_forward",
           "default_backend"]  # fmt: skip
