"""Weights pretrained on satellite bands (published with TorchGeo), as data: timm architectures
with their band lists, band order, published normalisation, file, hash and paper.

They join the timm source as extra tags (``timm/resnet18.ssl4eo_s12_all_moco``). They are
self-supervised feature extractors: no classifier head (``num_classes=0``), so they give feature
maps and pooled embeddings, not labels. The normalisation is the one the authors used, on raw
values: Sentinel-2 L1C digital numbers divided by 10,000 (mean 0, std 10,000); SSL4EO-L's 8-bit
Landsat values divided by 255. Facts read from TorchGeo's ``torchgeo/models/resnet.py`` and
``vit.py`` (MIT), and its SSL4EO-L dataset's band lists.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass

from modelkit.config import PretrainedCfg
from modelkit.images.limits import ImageArray

# Sentinel-2 Level-1C, the 13 bands in the order SSL4EO-S12 stores them
SENTINEL2_L1C = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
# Landsat 8/9 OLI surface reflectance (SSL4EO-L "oli_sr") and OLI+TIRS top of atmosphere
LANDSAT_OLI_SR = ("B1", "B2", "B3", "B4", "B5", "B6", "B7")
LANDSAT_OLI_TIRS_TOA = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "B10", "B11")

_HF = "https://hf.co/torchgeo"
_S12_PAPER = "https://arxiv.org/abs/2211.07044"
_L_PAPER = "https://arxiv.org/abs/2306.09424"


@dataclass(frozen=True)
class SensorWeights:
    """One published checkpoint: which timm architecture, trained on which bands, from where."""

    arch: str  # timm architecture
    tag: str  # our tag for it
    url: str  # .../resolve/<revision>/<file>-<sha256 prefix>.pth on the Hugging Face Hub
    sensor: str
    dataset: str
    method: str
    paper: str
    bands: tuple[str, ...]
    scale: float  # mean 0, std ``scale`` on the raw values
    resize: int | None  # resize the shorter side to this, then centre-crop 224
    license: str = "cc-by-4.0"  # the SSL4EO-S12 / SSL4EO-L weights' terms, as TorchGeo states

    @property
    def sha256_prefix(self) -> str:
        match = re.search(r"-([0-9a-f]{8,})\.\w+$", self.url)
        return match.group(1) if match else ""


SENSOR_WEIGHTS = (
    SensorWeights(
        "resnet18", "ssl4eo_s12_all_moco",
        f"{_HF}/resnet18_sentinel2_all_moco/resolve/5b8cddc9a14f3844350b7f40b85bcd32aed75918/"
        "resnet18_sentinel2_all_moco-59bfdff9.pth",
        "Sentinel-2 L1C", "SSL4EO-S12", "MoCo", _S12_PAPER, SENTINEL2_L1C, 10000.0, 256,
    ),
    SensorWeights(
        "resnet50", "ssl4eo_s12_all_moco",
        f"{_HF}/resnet50_sentinel2_all_moco/resolve/da4f3c9dbe09272eb902f3b37f46635fa4726879/"
        "resnet50_sentinel2_all_moco-df8b932e.pth",
        "Sentinel-2 L1C", "SSL4EO-S12", "MoCo", _S12_PAPER, SENTINEL2_L1C, 10000.0, 256,
    ),
    SensorWeights(
        "resnet50", "ssl4eo_s12_all_dino",
        f"{_HF}/resnet50_sentinel2_all_dino/resolve/d7f14bf5530d70ac69d763e58e77e44dbecfec7c/"
        "resnet50_sentinel2_all_dino-d6c330e9.pth",
        "Sentinel-2 L1C", "SSL4EO-S12", "DINO", _S12_PAPER, SENTINEL2_L1C, 10000.0, 256,
    ),
    SensorWeights(
        "vit_small_patch16_224", "ssl4eo_s12_all_moco",
        f"{_HF}/vit_small_patch16_224_sentinel2_all_moco/resolve/"
        "1cb683f6c14739634cdfaaceb076529adf898c74/vit_small_patch16_224_sentinel2_all_moco-67c9032d.pth",
        "Sentinel-2 L1C", "SSL4EO-S12", "MoCo", _S12_PAPER, SENTINEL2_L1C, 10000.0, 256,
    ),
    SensorWeights(
        "vit_small_patch16_224", "ssl4eo_s12_all_dino",
        f"{_HF}/vit_small_patch16_224_sentinel2_all_dino/resolve/"
        "5b41dd418a79de47ac9f5be3e035405a83818a62/vit_small_patch16_224_sentinel2_all_dino-36bcc127.pth",
        "Sentinel-2 L1C", "SSL4EO-S12", "DINO", _S12_PAPER, SENTINEL2_L1C, 10000.0, 256,
    ),
    SensorWeights(
        "resnet18", "ssl4eo_l_oli_sr_moco",
        f"{_HF}/ssl4eo_landsat/resolve/1c88bb51b6e17a21dde5230738fa38b74bd74f76/"
        "resnet18_landsat_oli_sr_moco-660e82ed.pth",
        "Landsat 8/9 OLI SR", "SSL4EO-L", "MoCo", _L_PAPER, LANDSAT_OLI_SR, 255.0, None,
    ),
    SensorWeights(
        "resnet18", "ssl4eo_l_oli_tirs_toa_moco",
        f"{_HF}/ssl4eo_landsat/resolve/1c88bb51b6e17a21dde5230738fa38b74bd74f76/"
        "resnet18_landsat_oli_tirs_toa_moco-a3002f51.pth",
        "Landsat 8/9 OLI+TIRS TOA", "SSL4EO-L", "MoCo", _L_PAPER, LANDSAT_OLI_TIRS_TOA, 255.0,
        None,
    ),
    SensorWeights(
        "resnet50", "ssl4eo_l_oli_sr_moco",
        f"{_HF}/ssl4eo_landsat/resolve/1c88bb51b6e17a21dde5230738fa38b74bd74f76/"
        "resnet50_landsat_oli_sr_moco-ff580dad.pth",
        "Landsat 8/9 OLI SR", "SSL4EO-L", "MoCo", _L_PAPER, LANDSAT_OLI_SR, 255.0, None,
    ),
)  # fmt: skip

_FIRST_CONV = {
    "resnet18": "conv1",
    "resnet50": "conv1",
    "vit_small_patch16_224": "patch_embed.proj",
}
_CLASSIFIER = {"resnet18": "fc", "resnet50": "fc", "vit_small_patch16_224": "head"}


def sensor_cfg(w: SensorWeights) -> PretrainedCfg:
    n = len(w.bands)
    # SSL4EO-S12: resize 256, centre-crop 224; SSL4EO-L: its 264 px patches centre-cropped to 224
    return PretrainedCfg(
        architecture=f"timm/{w.arch}",
        tag=w.tag,
        url=w.url,
        num_classes=0,
        in_chans=n,
        input_size=(n, 224, 224),
        resize_size=w.resize,
        mean=(0.0,) * n,
        std=(w.scale,) * n,
        interpolation="bilinear",
        crop_pct=224 / w.resize if w.resize else 224 / 264,
        value_scaling="none",
        bands=w.bands,
        first_conv=_FIRST_CONV[w.arch],
        classifier=_CLASSIFIER[w.arch],
        license=w.license,
        source="torchgeo",
    )


def sensor_cfgs() -> list[PretrainedCfg]:
    return [sensor_cfg(w) for w in SENSOR_WEIGHTS]


def sensor_weights(name: str) -> SensorWeights | None:
    """The sensor checkpoint behind ``timm/<arch>.<tag>``, if it is one."""
    for w in SENSOR_WEIGHTS:
        if name == f"timm/{w.arch}.{w.tag}":
            return w
    return None


def _norm(band: str) -> str:
    """'B02' / 'b2' / 'B8a' -> 'B2' / 'B2' / 'B8A' (Sentinel-2 and Landsat names)."""
    text = str(band).strip().upper().replace("BAND", "B").replace("_", "").replace(" ", "")
    return re.sub(r"^B0+(\d)", r"B\1", text)


def match_bands(image_bands: Sequence[str] | None, weight_bands: Sequence[str]) -> list[int] | None:
    """The image channel for each band the weights take, in their order; None when the image
    does not name every one of them."""
    if not image_bands:
        return None
    where = {_norm(b): i for i, b in enumerate(image_bands)}
    picked = [where.get(_norm(b)) for b in weight_bands]
    return None if None in picked else picked


def suggestions(num_channels: int, band_names: Sequence[str] | None) -> list[str]:
    """Sensor weights that fit an image (by its band names, else by its channel count)."""
    out = []
    for w in SENSOR_WEIGHTS:
        order = match_bands(band_names, w.bands)
        if order is not None or (not band_names and num_channels == len(w.bands)):
            name = f"timm/{w.arch}.{w.tag}"
            if name not in out:
                out.append(name)
    return out


def name_bands(image: ImageArray) -> ImageArray:
    """The image with the band names of the sensor its channel count matches, when the file
    names none (a 13-band file: Sentinel-2 L1C's; 7 bands: Landsat OLI's), and a note saying
    so; the image as it is otherwise."""
    if image.band_names:
        return image
    for w in SENSOR_WEIGHTS:
        if len(w.bands) == image.num_channels:
            note = (f"The file does not name its bands; as {len(w.bands)} bands they are taken to "
                    f"be {w.sensor}'s, in its order: {_list(w.bands)}.")  # fmt: skip
            return dataclasses.replace(image, band_names=list(w.bands),
                                       notes=[*image.notes, note])  # fmt: skip
    return image


# --- fitting an image's bands to sensor weights (what the app fills into its form) ------------


@dataclass(frozen=True)
class BandFit:
    """How an image's channels meet a sensor checkpoint's bands: the channels to feed, in the
    weights' band order (None: leave the user's pick alone), and what happened, in words."""

    channels: tuple[int, ...] | None
    native: bool  # the run will use the weights as published, without adapting the first layer
    message: str


def _list(items: Sequence) -> str:
    return ", ".join(str(i) for i in items)


def fit_bands(
    weights: SensorWeights,
    band_names: Sequence[str] | None,
    num_channels: int,
    picked: Sequence[int] | None = None,
) -> BandFit:
    """Match an image's bands to ``weights`` by name (else by count). ``picked``: the channels the
    user chose by hand, which are described but never replaced."""
    n = len(weights.bands)
    bands = _list(weights.bands)
    what = f"{weights.dataset} weights ({weights.sensor}, {n} bands: {bands})"
    native = f"native {n}-band weights, no adaptation"
    order = match_bands(band_names, weights.bands)
    if picked:
        picked = tuple(int(i) for i in picked)
        if order is not None and picked == tuple(order):
            return BandFit(None, True, f"Your channel pick {_list(picked)} matches the bands by "
                                       f"name; {native}.")  # fmt: skip
        fed = [band_names[i] if band_names and i < len(band_names) else str(i) for i in picked]
        if len(picked) == n:
            return BandFit(None, True, (
                f"Your channel pick feeds {_list(fed)} as {bands}: the {what} take them in this "
                "order, unadapted; check that the bands are the right ones."
            ))  # fmt: skip
        return BandFit(None, False, (
            f"Your channel pick has {len(picked)} channels; the {what} take {n}: their first "
            "layer will be adapted (no longer native)."
        ))  # fmt: skip
    if order is not None:
        left = [i for i in range(num_channels) if i not in order]
        extra = ""
        if left:
            names = [f"{i} {band_names[i]}" for i in left]
            extra = f" Left out: channel{'s' * (len(left) > 1)} {_list(names)}."
        return BandFit(tuple(order), True, (
            f"Bands matched by name: {bands} → channels {_list(order)}; {native}.{extra}"
        ))  # fmt: skip
    if band_names:
        have = {_norm(b) for b in band_names}
        missing = [b for b in weights.bands if _norm(b) not in have]
        return BandFit(None, False, (
            f"The file's bands do not match the {what}: missing {_list(missing)}. The channel "
            "picker is left as it is; the weights' first layer will be adapted to the channels "
            "fed (no longer native)."
        ))  # fmt: skip
    if num_channels == n:
        return BandFit(None, True, (
            f"The file does not name its bands: its {n} channels are assumed to be {bands}, in "
            f"this order ({native}). If they are in another order, pick them in this order under "
            "Image channels."
        ))  # fmt: skip
    return BandFit(None, False, (
        f"The file does not name its bands and has {num_channels} channel"
        f"{'s' * (num_channels != 1)}; the {what} take {n}: their first layer will be adapted "
        "(no longer native)."
    ))  # fmt: skip


def value_note(weights: SensorWeights, typical_high: float) -> str:
    """'' when an image's values (the 98th percentile of the bands fed) are in the range the
    weights were trained on, else a warning: they divide raw values by ``scale``, so a 16-bit
    file under 8-bit weights, or 0-1 reflectance under digital-number weights, gives features
    that mean little."""
    ratio = typical_high / weights.scale
    if 0.01 <= ratio <= 3:
        return ""
    trained = (
        "8-bit values (0-255)"
        if weights.scale == 255
        else f"digital numbers (reflectance x {weights.scale:g}, mostly 0-{weights.scale:g})"
    )
    return (
        f"Values: the bands fed reach {typical_high:.4g} (98th percentile), but the "
        f"{weights.dataset} weights were trained on {trained} and divide raw values by "
        f"{weights.scale:g}: their features will mean little. Use the file as the sensor "
        "delivered it (its original digital numbers) if you have it, or choose other weights."
    )
