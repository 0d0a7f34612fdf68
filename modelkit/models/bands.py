"""The spectral model ``"bands"``: per-band statistics of a tile and normalised-difference
indices, built like any other model (no network, no weights, nothing random).

    create_model("bands", in_chans=13, bands=("B1", ..., "B12"), sensor=None, num_classes=0)
    create_model("bands.sentinel2_l1c")      the tag names the bands (see TAGS)

Features of an (N, C, H, W) input, ``num_features = 2 C + I``:

- per band, ``log(mean)`` and ``log(std)`` of the tile (a log suits reflectances and digital
  numbers, which are positive: a mean below 1e-6 counts as 1e-6, so scale signed data such as
  SAR decibels first; a std below 1e-4 of the mean, or 1e-6, counts as that: a band constant
  over the tile, whatever rounding says);
- I normalised differences ``(a - b) / (a + b)`` of the band means (NDVI, NDWI, MNDWI, NBR,
  NDBI: see ``band_roles.INDICES``), for the roles the band names give (``band_roles``).

The model sees raw values: its data config has ``value_scaling="none"``, mean 0 and std 1, so
``scaling="auto"`` leaves values as they are. Its input size is 16 x 16 with ``crop_pct=1`` (320 m
at Sentinel-2's 20 m): a 16-pixel tile reaches it unchanged, so teach and map on 16-pixel tiles;
other sizes are resized to 16 (which smooths: the std falls, and an upsampled tile borrows
from its edge pixels).

As the other families, ``forward_features`` gives a map that ``forward_head`` pools: here the
per-pixel ``[x - c, (x - c)^2, c]`` for a per-band reference ``c`` (the mean of a 4-pixel grid
of the input, so the variance keeps float32 precision), and the head turns its average into the
statistics. ``grid_sums`` gives the sums of that map over a grid of boxes without making it
(what a scene map uses: a fraction of a second per megapixel).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from modelkit.config import PretrainedCfg
from modelkit.errors import ConfigError
from modelkit.models.arguments import check_reset
from modelkit.models.band_roles import band_roles, index_pairs
from modelkit.models.features import FamilySpec, FeatureInfo, resolve_out_indices
from modelkit.models.pretrained import head_note, new_head
from modelkit.models.record import ModelRecord
from modelkit.models.sensors import LANDSAT_OLI_SR, SENTINEL2_L1C

FLOOR = 1e-6  # smallest mean and std taken before the log
RELATIVE_FLOOR = 1e-4  # a std below this share of the mean counts as that (a constant band)
BLOCK_BYTES = 4 * 2**20  # rows summed at once in grid_sums
INPUT = 16
FAMILY = FamilySpec("bands", first_conv="", classifier="classifier", steps=(), head=())
TM_BANDS = ("B1", "B2", "B3", "B4", "B5", "B7")  # Landsat 4/5/7 TM/ETM+ reflective bands
# tag -> (bands in file order, sensor)
TAGS = {
    "sentinel2_l1c": (SENTINEL2_L1C, "sentinel2"),
    "sentinel2_l2a": (tuple(b for b in SENTINEL2_L1C if b != "B10"), "sentinel2"),
    "landsat_oli": (LANDSAT_OLI_SR, "landsat_oli"),
    "landsat_tm": (TM_BANDS, "landsat_tm"),
}
SENSOR_OF_TAG = {tag: sensor for tag, (_, sensor) in TAGS.items()}


def _cfg(tag: str = "", bands: tuple[str, ...] = (), chans: int = 3) -> PretrainedCfg:
    return PretrainedCfg(
        architecture="bands",
        tag=tag,
        num_classes=0,
        in_chans=chans,
        input_size=(chans, INPUT, INPUT),
        mean=(0.0,) * chans,
        std=(1.0,) * chans,
        crop_pct=1.0,
        value_scaling="none",
        bands=bands,
        classifier="classifier",
        license="no weights (statistics computed from the image)",
        source="spectral",
        is_default=not tag,
    )


def bands_name(names: Sequence[str] | None) -> str:
    """``bands.<tag>`` for band names that spell a known band list (its indices then apply),
    else the plain ``bands``."""
    from modelkit.models.band_roles import canonical

    canon = [canonical(n) for n in names or ()]
    for tag, (bands, _) in TAGS.items():
        if canon and canon == [canonical(b) for b in bands]:
            return f"bands.{tag}"
    return "bands"


def bands_entries() -> list[dict]:
    """The registry entry: the bare ``bands`` (any bands) and one tag per known band list."""
    cfgs = [_cfg()] + [_cfg(tag, bands, len(bands)) for tag, (bands, _) in TAGS.items()]
    return [{"name": "bands", "family": FAMILY, "builder": BandStatistics, "cfgs": cfgs,
             "source": "spectral"}]  # fmt: skip


class BandStatistics(nn.Module):
    """Band statistics as a model; see the module docstring."""

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 0,
        bands: Sequence[str] | None = None,
        sensor: str | None = None,
    ) -> None:
        super().__init__()
        if bands is not None and len(bands) != in_chans:
            raise ConfigError(
                f"bands= names {len(bands)} bands but in_chans={in_chans}; give one name per "
                "input channel, in order."
            )
        roles, notes = band_roles(bands, sensor)
        self.in_chans, self.band_names = in_chans, list(bands) if bands else None
        self.indices = index_pairs(roles)
        names = self.band_names or [f"band {i}" for i in range(in_chans)]
        self.feature_names = (
            [f"log mean {n}" for n in names]
            + [f"log std {n}" for n in names]
            + [name for name, _, _ in self.indices]
        )
        self.num_features = len(self.feature_names)
        self.num_classes = num_classes
        self.classifier = new_head(self.num_features, num_classes, "default")
        self.adaptations = notes
        levels = [{"index": 0, "module": "moments", "step": 0, "channels": 3 * in_chans,
                   "reduction": 1}]  # fmt: skip
        self.feature_info = FeatureInfo(levels)
        self.features_only = False
        self.modelkit = ModelRecord(name="bands", tag="", source="spectral",
                                    classifier="classifier", levels=levels,
                                    native=BandStatistics)  # fmt: skip

    # --- the feature map and its pooling -------------------------------------------------------
    @staticmethod
    def reference(x: torch.Tensor) -> torch.Tensor:
        """(N, C, 1, 1) per-band reference: the mean of every 4th row and column (in numpy,
        several times faster than torch on a strided view)."""
        if x.device.type != "cpu":
            return x[..., ::4, ::4].float().mean((2, 3), keepdim=True)
        grid = x.detach().numpy()[..., ::4, ::4]
        mean = grid.mean((2, 3), keepdims=True, dtype=np.float64).astype(np.float32)
        return torch.from_numpy(mean)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3C, H, W): ``x - c``, ``(x - c)^2`` and ``c`` per band, in float32."""
        x = self._check(x).float()
        c = self.reference(x)
        d = x - c
        return torch.cat([d, d * d, c.expand_as(x)], 1)

    def grid_sums(
        self, x: torch.Tensor, row_edges: Sequence[int], col_edges: Sequence[int]
    ) -> torch.Tensor:
        """(N, 3C, R, K) float64: sums of ``forward_features(x)`` over the boxes between
        consecutive row and column edges (increasing pixel positions), without making the full
        map: rows are summed a block at a time in numpy (a block stays in the CPU's cache;
        torch's reductions over a middle axis are several times slower), in float64."""
        x = self._check(x)  # float, or integer pixels (converted below, a block at a time)
        c = self.reference(x)
        rows, cols = np.asarray(row_edges), np.asarray(col_edges)
        n, chans, _, width = x.shape
        data, ref = x.cpu().numpy(), c.cpu().numpy()
        strips = np.empty((n, 2 * chans, len(rows) - 1, width))
        lengths = np.diff(rows)
        per_block = max(1, BLOCK_BYTES // (4 * n * chans * width))
        i = 0
        while i < len(lengths):  # consecutive intervals of one length, a block of rows at a time
            j, size = i + 1, int(lengths[i])
            while j < len(lengths) and lengths[j] == size and (j - i + 1) * size <= per_block:
                j += 1
            block = (data[:, :, rows[i] : rows[j]] - ref).astype(np.float32, copy=False)
            shape = (n, chans, j - i, size, width)
            strips[:, :chans, i:j] = block.reshape(shape).sum(3, dtype=np.float64)
            np.multiply(block, block, out=block)
            strips[:, chans:, i:j] = block.reshape(shape).sum(3, dtype=np.float64)
            i = j
        moments = np.add.reduceat(strips[..., : cols[-1]], cols[:-1], axis=3)
        area = lengths[:, None] * np.diff(cols)[None]
        out = np.concatenate([moments, ref.astype(np.float64) * area], 1)
        return torch.from_numpy(out).to(x.device)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool the map (a mean), turn it into the statistics, then the classifier."""
        if self.modelkit.global_pool == "":
            return x
        pooled = x.double()
        if pooled.ndim == 4:  # a map, or tiles already pooled (1 x 1)
            pooled = pooled.flatten(1) if pooled.shape[-2:] == (1, 1) else pooled.mean((2, 3))
        c, n = self.in_chans, pooled.shape[0]
        d, d2, ref = pooled[:, :c], pooled[:, c : 2 * c], pooled[:, 2 * c :]
        mean = ref + d
        std = (d2 - d * d).clamp_min_(0).sqrt_()
        out = torch.empty(n, self.num_features, dtype=torch.float32, device=pooled.device)
        out[:, :c] = mean.clamp_min(FLOOR).log_()
        out[:, c : 2 * c] = torch.maximum(
            std, (mean.abs() * RELATIVE_FLOOR).clamp_min_(FLOOR)
        ).log_()
        if self.indices:  # all the normalised differences at once
            a = mean[:, [i for _, i, _ in self.indices]]
            b = mean[:, [j for _, _, j in self.indices]]
            total = a + b
            ok = total.abs() > FLOOR
            out[:, 2 * c :] = torch.where(ok, (a - b) / torch.where(ok, total, 1.0), 0.0)
        return out if pre_logits else self.classifier(out)

    def forward(self, x: torch.Tensor):
        if self.features_only:
            return [self.forward_features(x)]
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(self, x: torch.Tensor, out_indices=None) -> list[torch.Tensor]:
        resolve_out_indices(out_indices, 1)
        return [self.forward_features(x)]

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A fresh linear classifier on the statistics (0: none)."""
        num_classes, pool = check_reset(num_classes, global_pool, self.modelkit.global_pool)
        self.classifier = new_head(self.num_features, num_classes, "default")
        self.num_classes, self.modelkit.global_pool, self.categories = num_classes, pool, None
        self.adaptations.append(head_note("classifier", num_classes))

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ConfigError(
                f"The bands model was built for {self.in_chans} channels, got an input of shape "
                f"{tuple(x.shape)}; build it with in_chans={x.shape[1] if x.ndim == 4 else '?'}."
            )
        return x


def create_bands_model(request) -> BandStatistics:
    """``create_model`` for ``bands[.tag]``, from its ``request.ModelRequest`` (``features_only``
    is create_model's last step, with ``to_features``): in_chans from the tag's bands (else 3),
    names from ``bands=`` or the tag, no weights to load (``pretrained`` changes nothing)."""
    cfg, kwargs = request.cfg, request.kwargs
    unknown = sorted(set(kwargs) - {"bands", "sensor"})
    if request.checkpoint_path or unknown:
        what = "checkpoint_path" if request.checkpoint_path else ", ".join(unknown)
        raise ConfigError(
            f"The bands model has no weights or options to set ({what}); it "
            "takes in_chans, num_classes, bands=(names) and sensor=."
        )
    names = kwargs.get("bands") or cfg.bands or None
    in_chans = request.in_chans or (len(names) if names else cfg.in_chans)
    if names and len(names) != in_chans:
        raise ConfigError(
            f"'{cfg.name}' is for {len(names)} bands ({', '.join(names)}), not in_chans="
            f"{in_chans}. Pick the {len(names)} bands (channels=...) or use the plain 'bands'."
        )
    sensor = kwargs.get("sensor") or SENSOR_OF_TAG.get(cfg.tag)
    model = BandStatistics(in_chans, request.num_classes or 0, names, sensor)
    model.pretrained_cfg = cfg
    model.data_config = cfg.data_config(in_chans)
    model.categories = None
    model.modelkit.name, model.modelkit.tag = cfg.name, cfg.tag
    if request.num_classes:
        model.modelkit.random_parts = [f"head for {request.num_classes} classes"]
    if request.global_pool is not None:
        model.modelkit.global_pool = request.global_pool
    return model.eval()


def to_features(model: BandStatistics, out_indices=None) -> BandStatistics:
    model.out_indices = resolve_out_indices(out_indices, 1)
    model.features_only, model.num_classes = True, 0
    model.classifier = nn.Identity()
    return model
