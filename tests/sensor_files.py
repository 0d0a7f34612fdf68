"""Files for the sensor-weights tests: Sentinel-2 stacks whose bands are named in another order
(or with extra or missing bands), and a Hugging Face cache holding a sensor checkpoint with the
published key layout (timm's keys for in_chans = the band count, no classifier), random values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

ASSETS = Path(__file__).resolve().parent.parent / "assets"
# the asset's bands in another order, named the way many tools write them, plus a class layer
SHUFFLED = ["B02", "B03", "B04", "B08", "B01", "B05", "B06", "B07", "B8A", "B09", "B10", "B11",
            "B12", "SCL"]  # fmt: skip


def sentinel2_stack() -> tuple[np.ndarray, list[str]]:
    """The shipped 13-band Sentinel-2 scene (C, H, W) and its band names."""
    from modelkit.images.read import read_image

    path = ASSETS / "sentinel2_13band.tif"
    image = read_image(path.read_bytes(), path.name)
    return np.asarray(image.data), list(image.band_names)


def write_stack(path: Path, names: list[str]) -> Path:
    """A TIFF of the shipped scene's bands called ``names`` (B08 == B8), in that order; a name
    the scene has not (SCL) gets a constant band. The names go in tifffile's JSON description."""
    data, bands = sentinel2_stack()
    where = {b.upper().replace("B0", "B"): i for i, b in enumerate(bands)}
    layers = [
        data[where[n.upper().replace("B0", "B")]]
        if n.upper().replace("B0", "B") in where
        else np.full(data.shape[1:], 4, data.dtype)
        for n in names
    ]
    tifffile.imwrite(path, np.stack(layers), metadata={"band_names": names},
                     photometric="minisblack")  # fmt: skip
    return path


def fake_sensor_hub(root: Path, name: str = "timm/resnet18.ssl4eo_s12_all_moco") -> dict:
    """A Hugging Face cache under ``root`` holding the sensor checkpoint ``name`` (what a download
    leaves, at the pinned revision); returns its state dict."""
    import timm
    import torch

    from modelkit.models.sensors import sensor_weights

    weights = sensor_weights(name)
    torch.manual_seed(3)
    head = "head." if weights.arch.startswith("vit") else "fc."
    model = timm.create_model(weights.arch, in_chans=len(weights.bands))
    sd = {k: v for k, v in model.state_dict().items() if not k.startswith(head)}
    repo, rest = weights.url.split("https://hf.co/", 1)[1].split("/resolve/", 1)
    revision, filename = rest.split("/", 1)
    folder = root / f"models--{repo.replace('/', '--')}"
    snap = folder / "snapshots" / revision
    snap.mkdir(parents=True, exist_ok=True)
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(revision)
    torch.save(sd, snap / filename)
    return sd
