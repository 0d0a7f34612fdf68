"""Small image folders for the batch tests: good photos in two sub-folders, a broken file, a
4-channel PNG, a 5-band NPY and a text file, all made here (nothing downloaded)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

GOOD = [f"cats/c{i}.png" for i in range(3)] + [f"dogs/d{i}.jpg" for i in range(3)]
BAD = {
    "broken.png": "damaged",
    "rgba.png": "the image's 4 channels",
    "five.npy": "the image's 5 channels",
}


def make_folder(root: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for name in GOOD:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (36, 44, 3), dtype=np.uint8)).save(path)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    Image.fromarray(rng.integers(0, 255, (32, 32, 4), dtype=np.uint8)).save(root / "rgba.png")
    np.save(root / "five.npy", rng.random((5, 32, 32)).astype(np.float32))
    (root / "notes.txt").write_text("not an image")
    return root


def zip_folder(folder: Path, target: Path) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    target.write_bytes(buffer.getvalue())
    return target
