"""Who serves a model's output in a run: torch, or a compiled graph (``runtime.backends``) where
the run's settings ask for one and it can serve (the CPU, no gradients, fp32 or int8).

    server(settings, key, model, output, example) -> (serve, runner or None)
        serve(x) gives the output for a batch x: "logits", "pooled", "trunk" or "features:i,j"
        (what torch gives: a tensor, or a list of maps); runner is the compiled path's Runner
        (its ``backend`` and ``notes`` say who served and why), None when torch serves alone.

Results are the same whoever serves: a compiled graph serves only after it matched torch on a
probe (max difference 1e-4 of the output's scale, same top-1), so fp32 results share the result
cache across backends; int8 results are keyed apart (``RunSettings.result_key``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from modelkit.runtime.backends import Runner, compiled_forward
from modelkit.runtime.backends.outputs import OutputModule, parse_output
from modelkit.runtime.model_cache import ModelKey


def server(settings, key: ModelKey, model: nn.Module, output: str,
           example: torch.Tensor) -> tuple[Callable, Runner | None]:  # fmt: skip
    """(serve, runner): how ``output`` of ``model`` is served for batches like ``example``."""
    if not settings.compiles(torch.device(key.device)):
        return OutputModule(model, parse_output(output)), None
    int8 = settings.precision == "int8"
    runner = compiled_forward(model, model_id=repr(key), output=output, example=example,
                              backend=settings.backend, precision="int8" if int8 else "fp32",
                              calibration=[example] if int8 else ())  # fmt: skip
    return runner, runner
