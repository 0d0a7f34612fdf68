"""Band tables of common sensors (names and central wavelengths), for naming the bars of a band
chart when the file does not name its bands, or to add wavelengths when it does.

Central wavelengths in nanometres: Sentinel-2A MSI (ESA, Sentinel-2 User Handbook) and
Landsat-8 OLI/TIRS (USGS Landsat 8 Data Users Handbook), rounded to the nanometre.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelkit.errors import ConfigError


@dataclass(frozen=True)
class Band:
    name: str  # as the sensor's products name it: B1 ... B12, B8A
    description: str
    wavelength_nm: int

    @property
    def label(self) -> str:
        return f"{self.name} {self.description} ({self.wavelength_nm} nm)"


_S2 = [
    Band("B1", "coastal aerosol", 443), Band("B2", "blue", 490), Band("B3", "green", 560),
    Band("B4", "red", 665), Band("B5", "red edge 1", 705), Band("B6", "red edge 2", 740),
    Band("B7", "red edge 3", 783), Band("B8", "NIR", 842), Band("B8A", "narrow NIR", 865),
    Band("B9", "water vapour", 945), Band("B10", "SWIR cirrus", 1375),
    Band("B11", "SWIR 1", 1610), Band("B12", "SWIR 2", 2190),
]  # fmt: skip
_L8 = [
    Band("B1", "coastal aerosol", 443), Band("B2", "blue", 482), Band("B3", "green", 561),
    Band("B4", "red", 655), Band("B5", "NIR", 865), Band("B6", "SWIR 1", 1609),
    Band("B7", "SWIR 2", 2201), Band("B8", "panchromatic", 590), Band("B9", "cirrus", 1373),
    Band("B10", "thermal 1", 10895), Band("B11", "thermal 2", 12005),
]  # fmt: skip

# preset name -> the bands in the order a file of that kind stores them
BAND_SETS: dict[str, tuple[Band, ...]] = {
    "Sentinel-2 L1C (13 bands)": tuple(_S2),
    "Sentinel-2 L2A (12 bands, no B10)": tuple(b for b in _S2 if b.name != "B10"),
    "Landsat-8 OLI (bands 1-7)": tuple(_L8[:7]),
    "Landsat-8 OLI/TIRS (11 bands)": tuple(_L8),
}


def canonical(name: str) -> str:
    """'B04', 'b4', 'Band 4', 'B4 (red)' -> 'B4'; 'B8A' stays; other names as they are."""
    match = re.match(r"^\s*(?:band\s*|b)0*(\d+)(a?)\b", name, flags=re.IGNORECASE)
    return f"B{match.group(1)}{match.group(2).upper()}" if match else name.strip()


def presets_for(count: int) -> list[str]:
    """The presets with exactly ``count`` bands."""
    return [name for name, bands in BAND_SETS.items() if len(bands) == count]


def band_labels(names: list[str] | None, count: int, preset: str | None = None) -> list[str]:
    """One label per band: the preset's labels, else the file's names (with the wavelength when
    a Sentinel-2 name is recognised), else 'band i'."""
    if preset:
        if preset not in BAND_SETS:
            raise ConfigError(f"Band preset {preset!r} is not known; use one of "
                              f"{', '.join(BAND_SETS)}.")  # fmt: skip
        bands = BAND_SETS[preset]
        if len(bands) != count:
            raise ConfigError(
                f"The band preset {preset!r} has {len(bands)} bands but the model sees {count} "
                f"channels; pick a preset with {count} bands "
                f"({', '.join(presets_for(count)) or 'none here'}) or none."
            )
        return [b.label for b in bands]
    if not names:
        return [f"band {i}" for i in range(count)]
    known = {b.name: b for b in _S2}
    sentinel = any(canonical(n) in ("B8A", "B11", "B12") for n in names)
    labels = []
    for n in names:
        band = known.get(canonical(n)) if sentinel else None
        labels.append(band.label if band else n)
    return labels
