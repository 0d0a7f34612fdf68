"""Georeferencing: read from a GeoTIFF's tags, scaled to a map's cells, written back as tags.

Read (``read_georef``): ``ModelTransformation`` (34264) when present, else one ``ModelTiepoint``
(33922) with ``ModelPixelScale`` (33550), give the GDAL-order geotransform ``(x0, a, b, y0, d,
e)``: map x = x0 + a col + b row, map y = y0 + d col + e row, for the corner of the pixel
(pixel-is-area). A file marked pixel-is-point (``GTRasterTypeGeoKey`` = 2) ties the pixel's
centre, so its transform is moved half a pixel up and left, as GDAL does. The EPSG code comes
from ``ProjectedCSTypeGeoKey`` (3072), else ``GeographicTypeGeoKey`` (2048); 32767
(user-defined) gives no code. Several tiepoints without a scale (ground control points) are not
read: the map is then made without georeferencing, and a note says why.

Write (``geotiff_tags``): only 33550 and 33922 (or 34264 for a rotated grid) and the GeoKey
directory 34735 with its doubles 34736 and text 34737, copied from the source with the raster
type set to pixel-is-area. Copying every tag of the source corrupts files (tifffile issue #42):
offsets and counts of the source's own layout would be written into the new one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

RASTER_TYPE_KEY, PROJECTED_KEY, GEOGRAPHIC_KEY, LINEAR_UNIT_KEY = 1025, 3072, 2048, 3076
MODEL_TYPE_KEY = 1024
USER_DEFINED = 32767
UNIT_METRES = {9001: 1.0, 9002: 0.3048, 9003: 1200 / 3937}  # metre, foot, US survey foot
EARTH_RADIUS_KM = 6371.0088  # mean radius, for areas on a geographic (degree) grid


@dataclass(frozen=True)
class Georef:
    """Where a raster's pixels lie: its geotransform, CRS and the tags to write it again."""

    transform: tuple[float, float, float, float, float, float]  # GDAL order, pixel corners
    crs: int | None  # EPSG code
    geographic: bool  # degrees (areas from the sphere) rather than projected units
    metres_per_unit: float | None  # projected linear unit in metres; None when unknown
    geokeys: tuple[int, ...] | None  # the GeoKey directory (34735), raster type = area
    geodoubles: tuple[float, ...] | None = None  # 34736
    geoascii: str | None = None  # 34737

    def scaled(self, cell: int) -> tuple[float, float, float, float, float, float]:
        """The transform of a grid whose cells are ``cell`` x ``cell`` source pixels, from the
        same top-left corner."""
        x0, a, b, y0, d, e = self.transform
        return (x0, a * cell, b * cell, y0, d * cell, e * cell)


def _geokey_values(keys: tuple[int, ...]) -> dict[int, int]:
    """key -> value of the GeoKey directory entries stored inline (location 0)."""
    out = {}
    for i in range(1, len(keys) // 4):
        key, location, _, value = keys[4 * i : 4 * i + 4]
        if location == 0:
            out[key] = value
    return out


def _area_keys(keys: tuple[int, ...], present: set[int]) -> tuple[int, ...]:
    """The directory with pixel-is-area as the raster type, and without entries that point at a
    tag the file does not have (they would make the written file refer to nothing)."""
    entries = [keys[4 * i : 4 * i + 4] for i in range(1, len(keys) // 4)]
    kept = [e for e in entries if e[0] != RASTER_TYPE_KEY and (e[1] == 0 or e[1] in present)]
    kept.append((RASTER_TYPE_KEY, 0, 1, 1))
    kept.sort(key=lambda e: e[0])
    header = (keys[0], keys[1], keys[2], len(kept))
    return tuple(int(v) for v in header + tuple(v for e in kept for v in e))


def _transform(tags: dict) -> tuple[tuple[float, ...] | None, str | None]:
    """(GDAL geotransform of the tie, or None, why not)."""
    matrix = tags.get(34264)
    if matrix is not None and len(matrix) >= 16:
        m = [float(v) for v in matrix]
        return (m[3], m[0], m[1], m[7], m[4], m[5]), None
    ties, scale = tags.get(33922), tags.get(33550)
    if ties is None:
        return None, None
    if scale is None or len(ties) != 6:
        return None, "its georeferencing is a set of ground control points, which is not read"
    i, j, _, x, y, _ = (float(v) for v in ties)
    sx, sy = float(scale[0]), float(scale[1])
    return (x - i * sx, sx, 0.0, y + j * sy, 0.0, -sy), None


def read_georef(page) -> tuple[Georef | None, list[str]]:
    """(Georef or None, notes) from a tifffile page's GeoTIFF tags."""
    tags = {
        code: page.tags[code].value
        for code in (33550, 33922, 34264, 34735, 34736, 34737)
        if code in page.tags
    }
    transform, why = _transform(tags)
    if transform is None:
        return None, [
            f"The scene is not georeferenced: {why}."
            if why
            else "The scene has no georeferencing: the map is made in pixel units."
        ]
    keys = tuple(int(v) for v in tags.get(34735, ()))
    values = _geokey_values(keys) if len(keys) >= 4 else {}
    if values.get(RASTER_TYPE_KEY) == 2:  # pixel-is-point: the tie is a pixel's centre
        x0, a, b, y0, d, e = transform
        transform = (x0 - 0.5 * (a + b), a, b, y0 - 0.5 * (d + e), d, e)
    crs, geographic = None, values.get(MODEL_TYPE_KEY) == 2
    for key, is_geographic in ((PROJECTED_KEY, False), (GEOGRAPHIC_KEY, True)):
        code = values.get(key)
        if code and code != USER_DEFINED:
            crs, geographic = int(code), is_geographic
            break
    unit = None if geographic else UNIT_METRES.get(values.get(LINEAR_UNIT_KEY, 9001))
    notes = [] if crs else ["The scene's coordinate system has no EPSG code (user-defined)."]
    present = {code for code in (34736, 34737) if code in tags}
    doubles = tuple(float(v) for v in tags[34736]) if 34736 in tags else None
    text = str(tags[34737]) if 34737 in tags else None
    return Georef(
        tuple(float(v) for v in transform),
        crs,
        geographic,
        unit,
        _area_keys(keys, present) if len(keys) >= 4 else None,
        doubles,
        text,
    ), notes


def minimal_keys(crs: int, geographic: bool) -> tuple[int, ...]:
    """A GeoKey directory that names only an EPSG code (pixel-is-area)."""
    entries = [
        (MODEL_TYPE_KEY, 0, 1, 2 if geographic else 1),
        (RASTER_TYPE_KEY, 0, 1, 1),
        (GEOGRAPHIC_KEY if geographic else PROJECTED_KEY, 0, 1, crs),
    ]
    return (1, 1, 0, len(entries), *(v for e in entries for v in e))


def geotiff_tags(georef: Georef, transform: tuple[float, ...]) -> list[tuple]:
    """tifffile ``extratags`` that place a raster with this transform in georef's CRS."""
    x0, a, b, y0, d, e = transform
    if b == 0 and d == 0:
        tags = [
            (33550, "d", 3, (a, -e, 0.0), True),
            (33922, "d", 6, (0.0, 0.0, 0.0, x0, y0, 0.0), True),
        ]
    else:  # a rotated or sheared grid: the full matrix
        matrix = (a, b, 0.0, x0, d, e, 0.0, y0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
        tags = [(34264, "d", 16, matrix, True)]
    keys = georef.geokeys
    if keys is None and georef.crs is not None:
        keys = minimal_keys(georef.crs, georef.geographic)
    if keys is not None:
        tags.append((34735, "H", len(keys), keys, True))
    if georef.geokeys is not None and georef.geodoubles is not None:
        tags.append((34736, "d", len(georef.geodoubles), georef.geodoubles, True))
    if georef.geokeys is not None and georef.geoascii is not None:
        tags.append((34737, "s", 0, georef.geoascii, True))
    return tags


def row_cell_km2(georef: Georef, transform: tuple[float, ...], rows: int) -> list[float] | None:
    """km^2 of one cell in each row of a grid with this transform (rows differ only on a
    geographic grid), or None when the units are not known."""
    x0, a, b, y0, d, e = transform
    if georef.geographic:
        if b or d:
            return None
        out = []
        for r in range(rows):
            lat1, lat2 = math.radians(y0 + e * r), math.radians(y0 + e * (r + 1))
            band = abs(math.sin(lat1) - math.sin(lat2)) * EARTH_RADIUS_KM**2
            out.append(band * math.radians(abs(a)))
        return out
    if georef.metres_per_unit is None:
        return None
    area = abs(a * e - b * d) * georef.metres_per_unit**2 / 1e6
    return [area] * rows
