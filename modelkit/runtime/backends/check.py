"""The probe: before a compiled graph serves anything, its outputs on a probe input are set
against torch's. It passes when the largest difference is within ``TOLERANCE`` of the output's
scale (its largest magnitude) and, for class scores, every row keeps torch's top-1 (unless
torch's own top two are closer than that tolerance: a tie, either answer is torch's)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

TOLERANCE = 1e-4  # of the output's scale
SCALE_FLOOR = 1e-3  # outputs smaller than this are compared as if their scale were this


@dataclass(frozen=True)
class Verdict:
    ok: bool
    max_diff: float  # largest absolute difference over every output
    scale: float  # the largest magnitude torch gave (over every output)
    reason: str = ""

    @property
    def relative(self) -> float:
        return self.max_diff / max(self.scale, SCALE_FLOOR)

    def words(self) -> str:
        return f"max difference {self.max_diff:.1e} ({self.relative:.1e} of the output's scale)"


def probe_input(example: torch.Tensor, rows: int = 2, size: tuple[int, int] | None = None,
                seed: int = 0) -> torch.Tensor:  # fmt: skip
    """A probe batch: the example's first image (when its size is kept) and seeded noise rows.

    Args:
        example: an (N, C, H, W) tensor like the real inputs.
        rows: the probe's batch size (2 checks a free batch axis against an export at 1).
        size: another (H, W) to check a free spatial size; None keeps the example's.
        seed: the noise's seed.
    Returns:
        A float32 (rows, C, H, W) CPU tensor.
    """
    c, h, w = example.shape[1:]
    h, w = size or (h, w)
    noise = torch.randn(rows, c, h, w, generator=torch.Generator().manual_seed(seed))
    if size is None:
        noise[0] = example[0].detach().float().cpu()
    return noise


def compare(reference: list[torch.Tensor], got: list[np.ndarray], ranked: bool) -> Verdict:
    """Set a session's outputs against torch's.

    Args:
        reference: torch's outputs (a list, in order).
        got: the session's outputs, in the same order.
        ranked: the outputs are class scores: compare the top-1 of each row too.
    Returns:
        A Verdict: ok, the largest difference, the scale, and the reason when not ok.
    """
    if len(reference) != len(got):
        why = f"it gave {len(got)} outputs where torch gives {len(reference)}"
        return Verdict(False, float("inf"), 0.0, why)
    worst, scale = 0.0, 0.0
    for ref, out in zip(reference, got, strict=True):
        r = ref.detach().float().cpu().numpy()
        if tuple(r.shape) != tuple(out.shape):
            why = f"it gave shape {tuple(out.shape)} where torch gives {r.shape}"
            return Verdict(False, float("inf"), 0.0, why)
        if not np.isfinite(out).all() and np.isfinite(r).all():
            return Verdict(False, float("inf"), 0.0, "it gave NaN or infinite values")
        worst = max(worst, float(np.abs(out.astype(np.float64) - r).max(initial=0.0)))
        scale = max(scale, float(np.abs(r).max(initial=0.0)))
    tol = TOLERANCE * max(scale, SCALE_FLOOR)
    if not worst <= tol:
        return Verdict(
            False,
            worst,
            scale,
            f"max difference {worst:.1e} is above the "
            f"tolerance {tol:.1e} ({TOLERANCE:g} of the output's scale {scale:.3g})",
        )
    if ranked:
        r = reference[0].detach().float().cpu().numpy().reshape(len(got[0]), -1)
        o = got[0].reshape(len(r), -1)
        rows = np.arange(len(r))
        theirs, ours = o.argmax(1), r.argmax(1)
        # a flipped top-1 is a fault only when torch's scores of the two classes differ by more
        # than the tolerance (else it is a tie that either order answers)
        gap = r[rows, ours] - r[rows, theirs]
        if (gap > tol).any():
            return Verdict(False, worst, scale, f"top-1 differs from torch's on "
                           f"{int((gap > tol).sum())} of {len(r)} probe rows")  # fmt: skip
    return Verdict(True, worst, scale)
