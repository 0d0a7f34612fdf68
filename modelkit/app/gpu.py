"""``on_gpu(seconds)``: mark a handler that runs a model, so that on a ZeroGPU Space it runs in
the GPU worker for at most ``seconds``. Everywhere else (no ``spaces`` package, or not on
ZeroGPU) the handler is returned as it is.

Put it under the error guard (``@guarded`` then ``@on_gpu(...)``), so that a user's mistake
raised inside the GPU worker still reaches the page as a plain message. Return only CPU data.
"""

from __future__ import annotations

import os
from collections.abc import Callable


def on_zero_gpu() -> bool:
    """True on a ZeroGPU Space (the platform sets SPACES_ZERO_GPU)."""
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")


def on_gpu(seconds: int) -> Callable:
    """A decorator: ``spaces.GPU(duration=seconds)`` on ZeroGPU, nothing elsewhere."""

    def decorate(fn: Callable) -> Callable:
        if not on_zero_gpu():
            return fn
        import spaces

        return spaces.GPU(duration=seconds)(fn)

    return decorate
