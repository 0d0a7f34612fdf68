"""Which band is blue, green, red, near or short-wave infrared, from band names: what the
``"bands"`` model needs to compute normalised-difference indices.

Names reach it three ways: role names (``"red"``, ``"nir"``, ``"swir1"``, case-insensitive);
a sensor's band names with the sensor said (``sensor="sentinel2"``, ``"landsat_oli"`` for
Landsat 8/9, ``"landsat_tm"`` for Landsat 4/5/7); or Sentinel-2 names alone when one of them is
``B8A`` (only Sentinel-2 has it). ``B4`` alone is red on Sentinel-2 and Landsat 8 but near
infrared on Landsat 5/7, so B-numbers without a sensor give no indices (and a note says so).
Band names are read as ``B04`` = ``B4`` = ``band 4`` = ``SR_B4``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from modelkit.errors import ConfigError

ROLES = ("blue", "green", "red", "nir", "swir1", "swir2")
# sensor -> canonical band name -> role
SENSOR_ROLES: dict[str, dict[str, str]] = {
    "sentinel2": {
        "B2": "blue",
        "B3": "green",
        "B4": "red",
        "B8": "nir",
        "B11": "swir1",
        "B12": "swir2",
    },
    "landsat_oli": {
        "B2": "blue",
        "B3": "green",
        "B4": "red",
        "B5": "nir",
        "B6": "swir1",
        "B7": "swir2",
    },
    "landsat_tm": {
        "B1": "blue",
        "B2": "green",
        "B3": "red",
        "B4": "nir",
        "B5": "swir1",
        "B7": "swir2",
    },
}
# name -> (first role, second role): (a - b) / (a + b) of the tile's band means
INDICES = (
    ("ndvi", "nir", "red"),  # vegetation (Rouse et al. 1974)
    ("ndwi", "green", "nir"),  # open water (McFeeters 1996)
    ("mndwi", "green", "swir1"),  # water, less confused by built-up land (Xu 2006)
    ("nbr", "nir", "swir2"),  # burn ratio
    ("ndbi", "swir1", "nir"),  # built-up (Zha et al. 2003)
)
_ROLE_ALIASES = {
    "nir": "nir",
    "near infrared": "nir",
    "swir 1": "swir1",
    "swir 2": "swir2",
    "swir16": "swir1",
    "swir22": "swir2",
}


def canonical(name: str) -> str:
    """``B04`` / ``b4`` / ``band 4`` / ``SR_B4`` -> ``B4``; ``b8a`` -> ``B8A``; else stripped."""
    text = str(name).strip()
    match = re.fullmatch(r"(?:SR_|ST_|TOA_)?(?:band\s*|b)0*(\d+)(a?)", text, flags=re.IGNORECASE)
    if match:
        return f"B{match.group(1)}{match.group(2).upper()}"
    return text


def role_of_name(name: str) -> str | None:
    """The role a band's own name states (``"Red"``, ``"NIR"``, ``"swir 1"``), or None."""
    text = str(name).strip().lower()
    if text in ROLES:
        return text
    return _ROLE_ALIASES.get(text)


def band_roles(
    names: Sequence[str] | None, sensor: str | None = None
) -> tuple[dict[str, int], list[str]]:
    """(role -> band index, notes) for bands with these names (in the model's input order)."""
    if not names:
        return {}, []
    if sensor is not None and sensor not in SENSOR_ROLES:
        raise ConfigError(
            f"sensor={sensor!r} is not known; use one of {', '.join(SENSOR_ROLES)} (or name "
            "the bands by role: blue, green, red, nir, swir1, swir2)."
        )
    found: dict[str, int] = {}
    for i, name in enumerate(names):
        role = role_of_name(name)
        if role is not None and role not in found:
            found[role] = i
    if found:
        return found, []
    canon = [canonical(n) for n in names]
    if sensor is None and "B8A" in canon:
        sensor = "sentinel2"
    if sensor is None:
        note = (
            "band names without a sensor: no spectral indices (give sensor='sentinel2', "
            "'landsat_oli' or 'landsat_tm', or name the bands red, nir, ...)"
        )
        return {}, [note]
    table = SENSOR_ROLES[sensor]
    for i, name in enumerate(canon):
        role = table.get(name)
        if role is not None and role not in found:
            found[role] = i
    return found, []


def index_pairs(roles: dict[str, int]) -> list[tuple[str, int, int]]:
    """(index name, band a, band b) for every index whose two roles are present."""
    return [(name, roles[a], roles[b]) for name, a, b in INDICES if a in roles and b in roles]
