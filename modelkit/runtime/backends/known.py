"""The torchvision families that a compiled graph does not serve, and why (checked by the slow
sweep, tests/test_backends_sweep.py: every other family exports and passes the probe, and
these fail with this reason). The runtime needs no list to stay correct: a failed export falls
back to torch by itself. This table is what the README tells users."""

from __future__ import annotations

# family -> (when, why torch serves it)
STAYS_ON_TORCH: dict[str, tuple[str, str]] = {
    "vgg": (
        "inputs under 224 px (its own size, 224, exports)",
        "adaptive_avg_pool2d: the ONNX exporter takes only an output size that divides the "
        "input's, and its 7 x 7 pool does not divide the smaller maps",
    ),
    "alexnet": (
        "inputs under 224 px (its own size, 224, exports)",
        "adaptive_avg_pool2d: the ONNX exporter takes only an output size that divides the "
        "input's, and its 6 x 6 pool does not divide the smaller maps",
    ),
}
