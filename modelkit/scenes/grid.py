"""Where the tiles, the map's cells and the windows lie on a scene.

Tiles are ``tile`` x ``tile`` source pixels, their top-left corners every ``stride`` pixels
from the scene's top-left; where the last of them would stop short of the border, one more tile
ends exactly at it (so every pixel is in a tile). The map has one cell per ``stride`` x
``stride`` source pixels from the top-left, ``ceil(H / stride)`` x ``ceil(W / stride)`` (the
last row and column may hang over the border). Every cell lies whole inside at least one tile.

A window is a block of whole tiles read and run together: square blocks for a tiled file, the
full width for a file stored in strips (each strip is decoded once). Windows share the pixels
where their tiles overlap; each tile belongs to exactly one window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from modelkit.errors import ConfigError


def _whole(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ConfigError(
            f"{name}={value!r} is not valid: give a whole number of pixels, at least 1."
        )
    return int(value)


def check_tiling(tile, stride, height: int, width: int, scene: str) -> tuple[int, int]:
    """(tile, stride) checked against each other and the scene, or a ConfigError in words."""
    tile, stride = _whole(tile, "tile"), _whole(stride, "stride")
    if tile > min(height, width):
        raise ConfigError(
            f"The scene '{scene}' ({width} x {height} pixels) is smaller than one tile of "
            f"{tile} x {tile} pixels. Give a smaller tile (at most {min(height, width)}), or a "
            "larger scene."
        )
    if stride > tile:
        raise ConfigError(
            f"stride={stride} is larger than tile={tile}: the tiles would leave gaps that no "
            f"tile sees. Use a stride of at most {tile} (half a tile, {max(1, tile // 2)}, "
            "blends neighbouring tiles)."
        )
    return tile, stride


def tile_starts(size: int, tile: int, stride: int) -> np.ndarray:
    """First pixel of each tile along one axis; the last tile ends at the border."""
    starts = np.arange(0, size - tile + 1, stride, dtype=np.int64)
    if starts[-1] + tile < size:
        starts = np.append(starts, size - tile)
    return starts


@dataclass(frozen=True)
class Window:
    """Tiles ``rows[0]..rows[1]-1`` x ``cols[0]..cols[1]-1`` (tile indices) and the source
    box their pixels cover, (top, bottom, left, right)."""

    index: int
    rows: tuple[int, int]
    cols: tuple[int, int]
    box: tuple[int, int, int, int]

    def halo_box(self, halo: int, height: int, width: int) -> tuple[int, int, int, int]:
        """The box grown by ``halo`` pixels on every side, inside the scene."""
        top, bottom, left, right = self.box
        return (
            max(0, top - halo),
            min(height, bottom + halo),
            max(0, left - halo),
            min(width, right + halo),
        )


@dataclass(frozen=True)
class Grid:
    """The tiles and cells of a ``height`` x ``width`` scene."""

    height: int
    width: int
    tile: int
    stride: int

    @property
    def rows(self) -> np.ndarray:
        return tile_starts(self.height, self.tile, self.stride)

    @property
    def cols(self) -> np.ndarray:
        return tile_starts(self.width, self.tile, self.stride)

    @property
    def cells(self) -> tuple[int, int]:
        return math.ceil(self.height / self.stride), math.ceil(self.width / self.stride)

    @property
    def tiles(self) -> int:
        return len(self.rows) * len(self.cols)

    def windows(self, pixels: int, full_width: bool = False) -> list[Window]:
        """Blocks of tiles of about ``pixels`` source pixels each (at least one tile); the full
        width of the scene when ``full_width``."""
        rows, cols = self.rows, self.cols
        if full_width and self.tile * self.width <= pixels:
            across = len(cols)
            down = max(1, (pixels // self.width - self.tile) // self.stride + 1)
        elif full_width:  # even one row of tiles is too wide: a part of it at a time
            across = max(1, (pixels // self.tile - self.tile) // self.stride + 1)
            down = 1
        else:
            side = max(1, (math.isqrt(pixels) - self.tile) // self.stride + 1)
            down = across = side
        out = []
        for i0 in range(0, len(rows), down):
            i1 = min(len(rows), i0 + down)
            for j0 in range(0, len(cols), across):
                j1 = min(len(cols), j0 + across)
                box = (
                    int(rows[i0]),
                    int(rows[i1 - 1]) + self.tile,
                    int(cols[j0]),
                    int(cols[j1 - 1]) + self.tile,
                )
                out.append(Window(len(out), (i0, i1), (j0, j1), box))
        return out

    def cells_inside(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """(first row, end row, first col, end col) of the cells that lie whole inside ``box``
        (a cell hanging over the scene's border counts as whole when the box reaches it)."""
        top, bottom, left, right = box
        h, w = self.cells
        r0, c0 = -(-top // self.stride), -(-left // self.stride)
        r1 = h if bottom >= self.height else bottom // self.stride
        c1 = w if right >= self.width else right // self.stride
        return r0, r1, c0, c1
