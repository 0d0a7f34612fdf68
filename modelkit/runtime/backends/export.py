"""torch -> ONNX: trace an output module to a file, batch (and, when asked, height and width) as
free axes. A failure becomes :class:`ExportFailed` with the reason in one line."""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

OPSET = 17


class ExportFailed(Exception):
    """The exporter could not turn this model into a graph; ``str()`` says why, in one line."""


@dataclass
class Exported:
    path: Path
    seconds: float
    outputs: int
    traced_constants: list[str] = field(default_factory=list)  # TracerWarnings: sizes baked in


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def export_onnx(module: nn.Module, example: torch.Tensor, path: Path, outputs: int,
                dynamic_spatial: bool = False) -> Exported:  # fmt: skip
    """Write ``module`` traced on ``example`` to ``path`` (written whole, then renamed).

    Args:
        module: the output module (eval mode, on the CPU).
        example: an (N, C, H, W) CPU tensor to trace with.
        path: where the .onnx file goes.
        outputs: how many tensors ``module`` returns (they are named y0, y1, ...).
        dynamic_spatial: free height and width as well as batch.
    Returns:
        What was written, how long it took, and the tracer's warnings about baked-in values.
    """
    names = [f"y{i}" for i in range(outputs)]
    free = {0: "batch", 2: "height", 3: "width"} if dynamic_spatial else {0: "batch"}
    axes = {"x": free} | {n: {0: "batch"} for n in names}
    if dynamic_spatial:  # maps' sizes follow the input's
        axes |= {n: {0: "batch", 2: f"h{i}", 3: f"w{i}"} for i, n in enumerate(names)}
    modes = {m: m.training for m in module.modules()}  # the exporter flips them: put them back
    # attention's fused inference kernel has no ONNX form; the plain path computes the same
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    started = time.perf_counter()
    # the graph traces outside inference mode (callers may be inside it), on a plain tensor
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        x = example.detach().clone()
        try:
            torch.onnx.export(module, (x,), str(partial), dynamo=False, opset_version=OPSET,
                              input_names=["x"], output_names=names, dynamic_axes=axes,
                              do_constant_folding=True)  # fmt: skip
        except Exception as error:  # noqa: BLE001 - any exporter failure means "torch serves"
            partial.unlink(missing_ok=True)
            raise ExportFailed(_reason(error)) from error
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)
            for m, training in modes.items():
                m.training = training
    os.replace(partial, path)
    baked = sorted({str(w.message).split(".")[0] for w in seen
                    if issubclass(w.category, torch.jit.TracerWarning)})  # fmt: skip
    return Exported(path, time.perf_counter() - started, outputs, baked)
