"""Labelled images for the Teach tests, all made from data shipped in installed packages or
generated here: scikit-image's lfw_subset (faces / not faces), its texture photos cut into
tiles, and a multi-band set whose classes differ in one band only."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import torch
from PIL import Image

TEXTURES = ("brick", "grass", "gravel")


def lfw(per_class: int = 20, size: int = 64) -> tuple[torch.Tensor, list[str]]:
    """Ready model inputs (N, 3, size, size), normalised for efficientnet_lite0 (mean = std =
    0.5), with labels 'face' / 'other'. Small inputs keep the embeddings cheap."""
    from skimage import data

    images = data.lfw_subset()  # 200 x 25 x 25 in [0, 1]: the first 100 are faces
    picked = list(range(per_class)) + list(range(100, 100 + per_class))
    x = torch.from_numpy(images[picked]).float()[:, None].repeat(1, 3, 1, 1)
    x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return (x - 0.5) / 0.5, ["face"] * per_class + ["other"] * per_class


def texture_tiles(per_class: int = 5, size: int = 64) -> list[tuple[str, str, np.ndarray]]:
    """(class, name, uint8 (size, size) tile) cut from scikit-image's texture photos."""
    from skimage import data

    out = []
    for name in TEXTURES:
        photo = getattr(data, name)()
        step = photo.shape[0] // size
        for i in range(per_class):
            r, c = divmod(i * 3 + 1, step)  # spread over the photo
            tile = photo[r * size : (r + 1) * size, c * size : (c + 1) * size]
            out.append((name, f"{name}_{i}.png", tile))
    return out


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def make_zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def texture_zip(per_class: int = 5, root: str = "textures/") -> bytes:
    return make_zip({f"{root}{cls}/{name}": png(tile) for cls, name, tile in
                     texture_tiles(per_class)})  # fmt: skip


def one_band_set(per_class: int = 16, bands: int = 5, band: int = 3, size: int = 64, seed: int = 0):
    """(N, bands, size, size) normalised inputs and labels: every band is the same kind of noise
    in both classes, except ``band``, which holds stripes, horizontal in class 'h' and vertical
    in class 'v' (random frequency and phase). Only that band tells the classes apart."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out, labels = [], []
    for label in ("h", "v"):
        for _ in range(per_class):
            image = rng.normal(0, 1, (bands, size, size)).astype(np.float32)
            freq, phase = rng.uniform(0.15, 0.4), rng.uniform(0, 2 * np.pi)
            axis = yy if label == "h" else xx
            image[band] = 1.5 * np.sin(freq * axis + phase) + 0.3 * image[band]
            out.append(image)
            labels.append(label)
    return torch.from_numpy(np.stack(out)), labels
