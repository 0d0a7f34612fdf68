"""Copy scikit-image's bundled sample photos into assets/ as lossless PNG.

chelsea (a tabby cat) and coffee (a cup of espresso) ship with scikit-image and are public domain /
CC0 (see skimage.data's docstrings). Run once: ``.venv/bin/python scripts/copy_photos.py``.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from skimage import data

ASSETS = Path(__file__).resolve().parent.parent / "assets"
PHOTOS = {"chelsea.png": data.chelsea, "coffee.png": data.coffee}


def main() -> None:
    ASSETS.mkdir(exist_ok=True)
    for filename, load in PHOTOS.items():
        pixels = load()  # (H, W, 3) uint8
        Image.fromarray(pixels).save(ASSETS / filename, format="PNG", optimize=True)
        print(f"wrote {ASSETS / filename} {pixels.shape} {pixels.dtype}")


if __name__ == "__main__":
    main()
