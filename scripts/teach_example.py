"""Write assets/teach_textures.zip: the Teach example, 3 classes (brick, grass, gravel) of 8
gray 64 x 64 tiles each, cut from scikit-image's texture photos (CC0, bundled in its wheel).

    .venv/bin/python scripts/teach_example.py
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

OUT = Path(__file__).resolve().parents[1] / "assets" / "teach_textures.zip"
CLASSES, PER_CLASS, SIZE = ("brick", "grass", "gravel"), 8, 64


def tiles(photo: np.ndarray) -> list[np.ndarray]:
    """PER_CLASS tiles spread over the photo on a regular grid."""
    step = photo.shape[0] // SIZE
    spots = np.linspace(0, step * step - 1, PER_CLASS).astype(int)
    return [photo[r * SIZE : (r + 1) * SIZE, c * SIZE : (c + 1) * SIZE]
            for r, c in (divmod(int(i), step) for i in spots)]  # fmt: skip


def main() -> None:
    with zipfile.ZipFile(OUT, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in CLASSES:
            for i, tile in enumerate(tiles(getattr(data, name)())):
                buf = io.BytesIO()
                Image.fromarray(tile).save(buf, format="PNG")
                info = zipfile.ZipInfo(f"textures/{name}/{name}_{i}.png", (2024, 1, 1, 0, 0, 0))
                zf.writestr(info, buf.getvalue())
    print(f"{OUT}: {OUT.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
