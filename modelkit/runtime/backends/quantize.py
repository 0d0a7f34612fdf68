"""int8: static quantization of a float32 graph, calibrated on the caller's images, and the gate
that decides whether it may serve (top-1 agreement with float32 on a probe set).

ONNX Runtime's quantizer writes a QDQ graph (int8 weights per channel, uint8 activations from
min/max calibration); both ONNX Runtime and OpenVINO run such a graph with int8 kernels, which
pay on CPUs with VNNI (``names.has_vnni``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

GATE = 0.99  # the share of probe images whose top-1 must match float32's


def quantize(fp32: Path, out: Path, calibration: Sequence[torch.Tensor]) -> None:
    """Write the int8 version of ``fp32`` to ``out``, calibrated on ``calibration`` batches.

    Args:
        fp32: the float32 graph.
        out: where the int8 graph goes.
        calibration: (N, C, H, W) batches of real, preprocessed images.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self._left = iter([{"x": b.detach().float().cpu().numpy()} for b in calibration])

        def get_next(self):
            return next(self._left, None)

    quantize_static(str(fp32), str(out), Batches(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=True, calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"ActivationSymmetric": False})  # fmt: skip


def agreement(reference: Sequence[torch.Tensor], got: Sequence[np.ndarray]) -> tuple[int, int]:
    """(rows whose top-1 matches, rows) over batches of class scores."""
    agree = total = 0
    for ref, out in zip(reference, got, strict=True):
        r = ref.detach().float().cpu().numpy().reshape(len(out), -1)
        agree += int((r.argmax(1) == np.asarray(out).reshape(len(r), -1).argmax(1)).sum())
        total += len(r)
    return agree, total


def gate_words(agree: int, total: int) -> str:
    share = agree / total if total else 0.0
    verdict = "passes" if share >= GATE else "fails"
    return (f"int8 agrees with float32 on the top-1 of {agree} of {total} probe images "
            f"({share:.1%}); the {GATE:.0%} gate {verdict}")  # fmt: skip
