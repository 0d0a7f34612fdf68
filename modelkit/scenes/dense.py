"""Dense mode: the trunk runs once over a large window instead of once per tile.

For a model whose head is a global average of its feature map followed by anything
(``forward_head(f) == forward_head(mean of f)``, checked numerically on the model itself:
CNNs and the heads taught on them), a tile's answer only needs the average of the feature map
over the tile. So the window (with a halo of context around its tiles) is scaled with the
scene's numbers, resized by the same factor ``preprocess`` would resize a tile
(``resize.plan_crop`` of a tile: its resized size over the tile size, the crop's offset
included), normalised, and run through ``forward_features`` once; each tile's footprint on the
feature map (fractional positions, area-weighted) is averaged, and the head runs on that
average. For a linear head this equals applying the head at every feature position and pooling
its answers over the tile. With a taught head's views (flips, turns) the window is turned, run
and its feature map turned back, per view. A model that can sum its own features over boxes
(``grid_sums``, as ``bands`` does) is asked for those sums instead of a feature map.

Where dense differs from tiles: a tile alone is padded with zeros at its border (every
convolution sees zeros there), while in dense mode it sees its real neighbours; the receptive
field of a feature position reaches beyond its tile (for resnet50 far beyond); the resize runs
on the whole window (a few pixels at a tile's edge are interpolated from its neighbours, not
clamped). The bench (bench/bench_scenes.py) reports the fraction of cells where the two modes
give the same class; models that pool globally inside the trunk (squeeze-and-excitation) differ
more, since their gates see the whole window.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from modelkit.images.preprocess import fill_nonfinite
from modelkit.images.resize import plan_crop
from modelkit.scenes.run import ModelRun
from modelkit.scenes.scaling import Scaling

_INTERPOLATIONS = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST,
}
# view -> (turn the input, turn the feature map back)
_VIEWS = {
    "identity": (lambda x: x, lambda x: x),
    "hflip": (lambda x: x.flip(-1), lambda x: x.flip(-1)),
    "vflip": (lambda x: x.flip(-2), lambda x: x.flip(-2)),
    "rot90": (lambda x: x.rot90(1, (-2, -1)), lambda x: x.rot90(-1, (-2, -1))),
    "rot180": (lambda x: x.rot90(2, (-2, -1)), lambda x: x.rot90(2, (-2, -1))),
    "rot270": (lambda x: x.rot90(3, (-2, -1)), lambda x: x.rot90(-3, (-2, -1))),
    "transpose": (lambda x: x.transpose(-2, -1), lambda x: x.transpose(-2, -1)),
    "antitranspose": (
        lambda x: x.rot90(2, (-2, -1)).transpose(-2, -1),
        lambda x: x.rot90(2, (-2, -1)).transpose(-2, -1),
    ),
}


def dense_unsupported(run: ModelRun) -> str | None:
    """Why dense mode does not apply to this model (None: it does)."""
    model = run.model
    record = getattr(model, "modelkit", None)
    if record is not None and record.fixed_size:
        return "it takes one input size only"
    if hasattr(model, "grid_sums"):
        return None
    c, h, w = run.data_config.input_size
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, c, h, w, generator=generator)
    with run.running():
        maps = model.forward_features(run.to_device(x))
        if maps.ndim != 4:
            return "its features are tokens, not a map"
        pre = run.head is not None
        full = model.forward_head(maps, pre_logits=pre).float()
        mean = model.forward_head(maps.mean((2, 3), keepdim=True), pre_logits=pre).float()
    scale = float(full.abs().max()) or 1.0
    if not torch.allclose(full, mean, rtol=1e-3, atol=1e-4 * scale):
        return "its head does more than average the feature map"
    return None


def footprints(starts: np.ndarray, origin: int, tile: int, plan, axis: int) -> np.ndarray:
    """(tiles, 2): where each tile's model input lies on the resized window, along one axis."""
    scale = plan.resized[axis] / tile
    first = (starts - origin) * scale + plan.first[axis]
    return np.stack([first, first + plan.crop[axis]], 1)


def area_weights(spans: np.ndarray, cells: int, per_cell: float) -> torch.Tensor:
    """(tiles, cells): the part of each feature cell (``per_cell`` resized pixels wide) inside
    each span, each row normalised to sum 1."""
    edges = np.arange(cells + 1) * per_cell
    low = np.maximum(edges[None, :-1], spans[:, :1])
    high = np.minimum(edges[None, 1:], spans[:, 1:])
    weights = np.clip(high - low, 0, None)
    weights /= np.maximum(weights.sum(1, keepdims=True), 1e-12)
    return torch.from_numpy(weights.astype(np.float32))


def window_input(run: ModelRun, scaling: Scaling, window: np.ndarray, size: tuple[int, int]):
    """(1, C, h', w'): the window scaled with the scene's numbers, resized, normalised. A model
    that sums its own features (``grid_sums``) takes integer pixels as they are when nothing
    changes them (no scaling, resize or normalisation): it converts them a block at a time."""
    config = scaling.config(run.data_config)
    identity = not any(config.mean) and all(s == 1 for s in config.std)
    if (hasattr(run.model, "grid_sums") and window.dtype.kind in "iu" and identity
            and tuple(window.shape[-2:]) == size and scaling.params is None
            and scaling.mode == "none"):  # fmt: skip
        return torch.from_numpy(window)[None]
    x = torch.from_numpy(fill_nonfinite(scaling.to_float(window)))
    if tuple(x.shape[-2:]) != size:
        mode = _INTERPOLATIONS[config.interpolation]
        x = F.resize(x, list(size), interpolation=mode, antialias=True)
    if not identity:
        x = F.normalize(x, list(config.mean), list(config.std))
    return x[None]


def dense_input(run: ModelRun, scaling: Scaling, window: np.ndarray, tile: int) -> torch.Tensor:
    """(1, C, h', w') on the model's device: the window resized by the factor its tiles would be
    (see ``window_input``); made ahead of the model, while the previous window runs."""
    plan = plan_crop(tile, tile, run.data_config)
    size = (round(window.shape[1] * plan.resized[0] / tile),
            round(window.shape[2] * plan.resized[1] / tile))  # fmt: skip
    return run.to_device(window_input(run, scaling, window, size))


def pooled_grid(run: ModelRun, x: torch.Tensor, origin: tuple[int, int], rows: np.ndarray,
                cols: np.ndarray, tile: int) -> torch.Tensor:  # fmt: skip
    """(tile rows, tile cols, views, Df): each tile's feature map averaged over its footprint
    on ``x`` (``dense_input`` of the window whose top-left pixel is ``origin``)."""
    plan = plan_crop(tile, tile, run.data_config)
    size = tuple(x.shape[-2:])
    down = footprints(rows, origin[0], tile, plan, 0)
    across = footprints(cols, origin[1], tile, plan, 1)
    model = run.model
    with run.running():
        if hasattr(model, "grid_sums"):  # its own box sums, views change no statistic
            sums = _box_means(model, x, down, across)
            return sums[:, :, None].expand(-1, -1, len(run.views), -1)
        views = []
        for name in run.views:
            turn, back = _VIEWS[name]
            maps = back(run.serve("trunk", turn(x)))[0].float()
            wr = area_weights(down, maps.shape[1], size[0] / maps.shape[1]).to(maps.device)
            wc = area_weights(across, maps.shape[2], size[1] / maps.shape[2]).to(maps.device)
            views.append(torch.einsum("ri,dij,cj->rcd", wr, maps, wc))
    return torch.stack(views, 2)


def _box_means(model, x: torch.Tensor, down: np.ndarray, across: np.ndarray) -> torch.Tensor:
    """(rows, cols, Df) float64 means of the model's features over each tile box (whole
    pixels), from its sums over the grid of all box edges."""
    down = np.clip(np.rint(down).astype(np.int64), 0, x.shape[-2])
    across = np.clip(np.rint(across).astype(np.int64), 0, x.shape[-1])
    row_edges, col_edges = np.unique(down), np.unique(across)
    sums = model.grid_sums(x, row_edges.tolist(), col_edges.tolist())[0].cpu().numpy()
    total = np.zeros((sums.shape[0], sums.shape[1] + 1, sums.shape[2] + 1))
    np.cumsum(np.cumsum(sums, 1), 2, out=total[:, 1:, 1:])
    total = np.ascontiguousarray(total.transpose(1, 2, 0))  # (R+1, K+1, Df)
    r = np.searchsorted(row_edges, down)
    c = np.searchsorted(col_edges, across)
    r0, r1, c0, c1 = r[:, 0, None], r[:, 1, None], c[None, :, 0], c[None, :, 1]
    box = total[r1, c1] - total[r0, c1] - total[r1, c0] + total[r0, c0]
    area = (down[:, 1:] - down[:, :1]) * (across[:, 1] - across[:, 0])[None]
    return torch.from_numpy(box / np.maximum(area, 1)[..., None]).to(x.device)
