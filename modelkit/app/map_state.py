"""The Map task's state and pictures, without gradio: the scene's preview, the examples a person
clicked (class and scene position), the pieces cut around them, the map drawn over the preview
with markers, suggestions and look-alikes, and the examples as a ZIP (and back).

A page state is plain JSON: {"scene", "examples": [{"cls", "x", "y"}], "tile", "suggested":
[[x, y]], "alike": [[row, col]], "map": id of the last SceneMap (kept here, in ``MAPS``)}.
Positions are in scene pixels; the preview shows one pixel every ``step`` of them.
"""

from __future__ import annotations

import functools
import io
import re
import uuid
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, ImageDraw, ImageFont

from modelkit.app import words
from modelkit.errors import ConfigError
from modelkit.scenes.export import class_colours
from modelkit.scenes.preview import Preview, scene_preview
from modelkit.scenes.scene_map import SceneMap
from modelkit.scenes.windows import Scene, nodata_mask, open_scene

MAPS: OrderedDict[str, SceneMap] = OrderedDict()  # the last maps made on this server, by id
KEEP_MAPS = 6
MARK = (255, 255, 255)  # outline of look-alike cells and of suggestions
NAME = re.compile(r"x(\d+)_y(\d+)_t(\d+)\.tiff?$")  # an exported example's file name


def new_state(scene: str | None = None) -> dict:
    return {"scene": scene, "examples": [], "suggested": [], "alike": [], "map": None}


@functools.lru_cache(maxsize=4)
def _preview(path: str, mtime_ns: int) -> tuple[Preview, tuple[int, int, int], list | None]:
    with open_scene(path) as scene:
        return scene_preview(scene), scene.shape, scene.band_names


def preview(path: str) -> tuple[Preview, tuple[int, int, int], list | None]:
    """(preview, scene shape (C, H, W), band names) of a scene file (cached while it is used)."""
    return _preview(str(path), Path(path).stat().st_mtime_ns)


def keep_map(scene_map: SceneMap) -> str:
    key = uuid.uuid4().hex
    MAPS[key] = scene_map
    while len(MAPS) > KEEP_MAPS:
        MAPS.popitem(last=False)
    return key


def the_map(state: dict) -> SceneMap | None:
    return MAPS.get(state.get("map") or "")


# --- clicks -------------------------------------------------------------------------------------
def scene_point(state: dict, x: int, y: int) -> tuple[int, int]:
    """The scene pixel under a click at preview pixel (x, y); refused in words off the scene or
    on a pixel with no data."""
    view, (_, height, width), _ = preview(state["scene"])
    px, py = int(x), int(y)
    if not (0 <= py < view.valid.shape[0] and 0 <= px < view.valid.shape[1]):
        raise ConfigError("That click is outside the scene: click on the picture of the scene.")
    if not view.valid[py, px]:
        raise ConfigError("There is no data where you clicked (outside the scene's footprint, "
                          "or no-data pixels): click on the scene itself.")  # fmt: skip
    return min(px * view.step, width - 1), min(py * view.step, height - 1)


def near(points, x: int, y: int, radius: int) -> int | None:
    """The index of the first point within ``radius`` scene pixels of (x, y), or None."""
    for i, (px, py) in enumerate(points):
        if abs(px - x) <= radius and abs(py - y) <= radius:
            return i
    return None


def toggle_example(state: dict, cls: str, x: int, y: int, tile: int) -> dict:
    """A click in teaching mode: on an example, remove it; on a suggestion, or elsewhere, add an
    example of ``cls`` there."""
    examples = list(state["examples"])
    hit = near([(e["x"], e["y"]) for e in examples], x, y, max(2, tile // 4))
    if hit is not None:
        examples.pop(hit)
        return {**state, "examples": examples}
    name = str(cls or "").strip()
    if not name:
        raise ConfigError("Type a class name first (e.g. water), then click on the scene.")
    suggested = list(state["suggested"])
    taken = near(suggested, x, y, max(2, tile // 2))
    if taken is not None:  # a suggestion clicked: it becomes the example, at its own place
        x, y = suggested.pop(taken)
    examples.append({"cls": name, "x": int(x), "y": int(y)})
    return {**state, "examples": examples, "suggested": suggested}


def counts(state: dict) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in state["examples"]:
        out[e["cls"]] = out.get(e["cls"], 0) + 1
    return dict(sorted(out.items()))


def check_examples(state: dict) -> None:
    """Train waits for two classes with at least two examples each, and says why."""
    found = counts(state)
    if len(found) < 2:
        raise ConfigError("Give examples of at least two classes: type a class name, click on "
                          "the scene where it is, then the same for another class.")  # fmt: skip
    single = [c for c, n in found.items() if n < 2]
    if single:
        raise ConfigError(f"{', '.join(single)} {'has' if len(single) == 1 else 'have'} one "
                          "example only: click at least one more place of it.")  # fmt: skip


# --- pieces around the examples -----------------------------------------------------------------
def window(scene: Scene, x: int, y: int, tile: int) -> tuple[int, int]:
    """Top-left corner of the ``tile`` x ``tile`` piece centred on (x, y), inside the scene."""
    top = int(np.clip(y - tile // 2, 0, max(0, scene.height - tile)))
    left = int(np.clip(x - tile // 2, 0, max(0, scene.width - tile)))
    return top, left


def pieces(state: dict, tile: int) -> tuple[list[np.ndarray], list[str], list[str]]:
    """(raw (C, tile, tile) pieces, classes, names) of the examples; a piece with no data is
    refused in words."""
    out, labels, names = [], [], []
    with open_scene(state["scene"]) as scene:
        if tile > min(scene.height, scene.width):
            raise ConfigError(f"Pieces of {tile} pixels do not fit in this "
                              f"{scene.height} x {scene.width} scene: choose a smaller piece "
                              "size.")  # fmt: skip
        for e in state["examples"]:
            top, left = window(scene, e["x"], e["y"], tile)
            piece = scene.read(top, top + tile, left, left + tile)
            if nodata_mask(piece, scene.nodata).mean() > 0.5:
                raise ConfigError(f"The {e['cls']} example at ({e['x']}, {e['y']}) is mostly "
                                  "no data: click it to remove it.")  # fmt: skip
            out.append(piece)
            labels.append(e["cls"])
            names.append(f"{e['cls']} at x {e['x']}, y {e['y']}")
    return out, labels, names


def examples_zip(state: dict, tile: int) -> bytes:
    """The examples as a ZIP that Teach accepts (one folder per class, one TIFF per piece, the
    bands as they are); each file's name keeps its place on the scene for an import."""
    raw, labels, _ = pieces(state, tile)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for e, piece, cls in zip(state["examples"], raw, labels, strict=True):
            data = io.BytesIO()
            tifffile.imwrite(data, piece, photometric="minisblack", planarconfig="separate")
            zf.writestr(f"{cls}/x{e['x']}_y{e['y']}_t{tile}.tif", data.getvalue())
    return buf.getvalue()


def import_zip(state: dict, data: bytes) -> dict:
    """Examples from a ZIP this page exported (folders are classes, names give places)."""
    try:
        members = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except zipfile.BadZipFile:
        raise ConfigError("That file is not a ZIP: give a ZIP of examples exported here.") from None
    found = []
    for member in members:
        parts, match = member.strip("/").split("/"), NAME.search(member)
        if len(parts) == 2 and match:
            found.append({"cls": parts[0], "x": int(match.group(1)), "y": int(match.group(2))})
    if not found:
        raise ConfigError("This ZIP's files do not say where they lie on a scene (it was "
                          "not exported from this page): use it on the Teach task.")  # fmt: skip
    return {**state, "examples": state["examples"] + found, "suggested": []}


# --- pictures -----------------------------------------------------------------------------------
def _colours(names: list[str]) -> dict[str, tuple[int, int, int]]:
    return {n: tuple(int(v) for v in c) for n, c in zip(names, class_colours(names), strict=True)}


def area_table(scene_map: SceneMap, headers: list[str]):
    """The area of each class, its name on the class's map colour: the page's legend."""
    import pandas as pd

    rows = [[r["class"], words.percent(r["fraction"]),
             "" if r["km2"] is None else round(r["km2"], 2)] for r in scene_map.area]  # fmt: skip
    colours = _colours(list(scene_map.classes))

    def paint(name: str) -> str:
        r, g, b = colours[name]
        ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "white"
        return f"background-color: rgb({r}, {g}, {b}); color: {ink}"

    frame = pd.DataFrame(rows, columns=headers)
    # a Styler shows floats with six decimals unless told
    return frame.style.map(paint, subset=[headers[0]]).format(precision=2, subset=[headers[2]])


def picture(state: dict, opacity: float, tile: int) -> np.ndarray:
    """The preview, the map's colours over it (``opacity``), look-alike cells outlined, the
    examples as squares of their class's colour, and the suggestions numbered."""
    view, _, _ = preview(state["scene"])
    rgb = view.rgb.astype(np.float32)
    scene_map = the_map(state)
    step = view.step
    if scene_map is not None:
        cell = scene_map.cell
        rows = np.minimum(np.arange(rgb.shape[0]) * step // cell, scene_map.class_map.shape[0] - 1)
        cols = np.minimum(np.arange(rgb.shape[1]) * step // cell, scene_map.class_map.shape[1] - 1)
        cmap = scene_map.class_map[rows][:, cols]
        painted = class_colours(scene_map.classes)[np.clip(cmap, 0, None)].astype(np.float32)
        mix = np.where((cmap >= 0)[..., None], opacity, 0.0)
        rgb = (1 - mix) * rgb + mix * painted
    image = Image.fromarray(rgb.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    if scene_map is not None:
        side = max(1, scene_map.cell // step)
        for r, c in state["alike"]:
            x, y = c * scene_map.cell // step, r * scene_map.cell // step
            draw.rectangle([x, y, x + side, y + side], outline=MARK, width=2)
    names = list(counts(state))
    colours = _colours(names)
    half = max(2, tile // (2 * step))
    for e in state["examples"]:
        x, y = e["x"] // step, e["y"] // step
        draw.rectangle([x - half, y - half, x + half, y + half], outline=colours[e["cls"]],
                       width=2)  # fmt: skip
        draw.rectangle([x - 1, y - 1, x + 1, y + 1], fill=colours[e["cls"]])
    font = ImageFont.load_default()
    for i, (sx, sy) in enumerate(state["suggested"], 1):
        x, y = sx // step, sy // step
        draw.ellipse([x - 7, y - 7, x + 7, y + 7], fill=(0, 0, 0), outline=MARK, width=2)
        draw.text((x - 3, y - 6), str(i), fill=MARK, font=font)
    return np.asarray(image)


def upsampled(values: np.ndarray, shape: tuple[int, int], step: int, cell: int) -> np.ndarray:
    """A (h, w[, 3]) cell grid at the preview's size (each preview pixel takes its cell)."""
    rows = np.minimum(np.arange(shape[0]) * step // cell, values.shape[0] - 1)
    cols = np.minimum(np.arange(shape[1]) * step // cell, values.shape[1] - 1)
    return values[rows][:, cols]


def confidence_picture(state: dict) -> np.ndarray | None:
    scene_map = the_map(state)
    if scene_map is None:
        return None
    view, _, _ = preview(state["scene"])
    grey = np.nan_to_num(scene_map.confidence, nan=0.0)
    big = upsampled(grey, view.rgb.shape[:2], view.step, scene_map.cell)
    return (np.stack([big] * 3, -1) * 255).astype(np.uint8)


def embedding_picture(state: dict) -> np.ndarray | None:
    scene_map = the_map(state)
    if scene_map is None or scene_map.embedding_rgb is None:
        return None
    view, _, _ = preview(state["scene"])
    return upsampled(scene_map.embedding_rgb, view.rgb.shape[:2], view.step, scene_map.cell)


def cell_of(state: dict, x: int, y: int) -> tuple[int, int]:
    """The map cell (row, col) of scene pixel (x, y)."""
    scene_map = the_map(state)
    return y // scene_map.cell, x // scene_map.cell
