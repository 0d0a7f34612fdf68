"""TIFF reading for ``images.read``: any band count, dtype, compression, OME, ImageJ, GeoTIFF.

Channels come from the axes tifffile reports for the file's first series: ``C`` (channels), ``S``
(samples per pixel), ``I`` (a plain page sequence) and ``Q`` (unnamed) are channel axes; several
of them are flattened into one channel axis in file order. Any other axis (``Z`` depth, ``T``
time, ...) is cut to its first plane, and the notes say so. Band names come, in this order, from
OME channel names, ImageJ labels, GDAL_METADATA band descriptions (tag 42112), or a
``band_names`` / ``channel_names`` list in tifffile's JSON description.

The file is opened from memory with multi-file OME turned off, so OME-XML that names other files
cannot make the server read them (a note says it named some). What tifffile logs while reading
goes into the notes; a chain of pages that leads out of the file is refused as damaged, since
bands would silently go missing.
"""

from __future__ import annotations

import io
import json
import logging
import struct
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import tifffile

from modelkit.images.limits import ReadLimits, check_dtype, check_size, fail

CHANNEL_AXES = "CSIQ"


def read_tiff(data: bytes, filename: str, limits: ReadLimits):
    """(array (C, H, W), original shape, axes, band names or None, notes) for a TIFF upload."""
    check_structure(data, filename)
    notes: list[str] = []
    with (
        tifffile_warnings() as warned,
        tifffile.TiffFile(io.BytesIO(data), _multifile=False) as tif,
    ):
        series = tif.series
        broken = [w for w in warned if "invalid page offset" in w]
        if broken:  # the chain of images leads out of the file: later pages/bands are lost
            raise fail(
                filename,
                f"the TIFF data is damaged or incomplete ({broken[0]})",
                "Check that the upload finished and the file opens elsewhere.",
            )
        if not series:
            raise fail(filename, "the TIFF holds no images", "Save the image again.")
        first = series[0]
        if len(series) > 1:
            notes.append(
                f"The TIFF holds {len(series)} separate images; read the first "
                f"({'x'.join(map(str, first.shape))})."
            )
        shape, axes, dtype = tuple(first.shape), first.axes, np.dtype(first.dtype)
        check_dtype(dtype, filename)
        if "Y" not in axes or "X" not in axes:
            raise fail(
                filename,
                f"its image axes '{axes}' have no rows and columns",
                "Save it as a regular 2-D image or stack.",
            )
        channels = int(
            np.prod(
                [n for a, n in zip(axes, shape, strict=True) if a in CHANNEL_AXES], dtype=np.int64
            )
        )
        height, width = shape[axes.index("Y")], shape[axes.index("X")]
        total = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        check_size((channels, height, width), dtype.itemsize, filename, limits, total_bytes=total)
        band_names = find_band_names(tif, first, axes, shape)
        if tif.is_ome and 'FileName="' in (tif.ome_metadata or ""):
            notes.append("The OME metadata names other files; only this file's pixels are read.")
        # read the compressed data in small passes (tifffile's default is 256 MB at once, a
        # second copy of the file beside the decoded array); no slower in bench/bench_io.py
        array = first.asarray(buffersize=READ_BUFFER_BYTES)
    notes.extend(f"The TIFF reader warned: {w}" for w in dict.fromkeys(warned))
    return to_chw(array, axes, notes), shape, axes, band_names, notes


# bytes per value of each TIFF field type (BYTE, ASCII, SHORT, LONG, RATIONAL, ..., IFD8)
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4,
               16: 8, 17: 8, 18: 8}  # fmt: skip
READ_BUFFER_BYTES = 4 << 20
MAX_PAGES = 65536  # more pages than this is refused (channels are capped far lower anyway)


def check_structure(data: bytes, filename: str) -> None:
    """Walk the chain of pages (IFDs) before tifffile does; refuse one that loops, runs past
    MAX_PAGES, or has a tag that declares more values than the whole file holds.

    tifffile loops forever, growing memory without end, on some page chains that lead back on
    themselves through misaligned pages (found by fuzzing: 8 bytes inserted into a 3-page TIFF),
    and trusts tag counts. No valid file has either, so refusing them costs nothing valid."""
    order = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")
    head, entry, inline = ("Q", 20, 8) if big else ("H", 12, 4)
    count_fmt, offset_fmt = f"{order}{head}", f"{order}{'Q' if big else 'I'}"
    offset_size = struct.calcsize(offset_fmt)
    offset = struct.unpack_from(offset_fmt, data, 8 if big else 4)[0] if len(data) >= 16 else 0
    seen: set[int] = set()
    while 0 < offset < len(data):
        if offset in seen or len(seen) >= MAX_PAGES:
            problem = (
                f"its list of pages loops back to byte {offset:,}"
                if offset in seen
                else f"it lists more than {MAX_PAGES:,} pages"
            )
            raise fail(
                filename,
                f"the TIFF data is damaged or incomplete ({problem})",
                "Save the image again; check that the upload finished.",
            )
        seen.add(offset)
        if offset + struct.calcsize(count_fmt) > len(data):
            return  # tifffile reports the broken chain
        (entries,) = struct.unpack_from(count_fmt, data, offset)
        start = offset + struct.calcsize(count_fmt)
        for i in range(min(entries, (len(data) - start) // entry)):
            at = start + i * entry
            code, kind = struct.unpack_from(f"{order}HH", data, at)
            (count,) = struct.unpack_from(offset_fmt, data, at + 4)
            size = count * _TYPE_SIZES.get(kind, 0)
            if size > inline and size > len(data):
                raise fail(
                    filename,
                    f"the TIFF data is damaged or incomplete (tag {code} declares {count:,} "
                    f"values, {size:,} bytes, in a file of {len(data):,} bytes)",
                    "Check that the upload finished and the file opens elsewhere.",
                )
        after = start + entries * entry
        if after + offset_size > len(data):
            return
        (offset,) = struct.unpack_from(offset_fmt, data, after)


class _Collect(logging.Handler):
    """Keeps the messages tifffile logs from one thread (uploads may be read concurrently)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            message = record.getMessage()
            self.messages.append(message.split("> ", 1)[-1] if message.startswith("<") else message)


@contextmanager
def tifffile_warnings() -> Iterator[list[str]]:
    """What tifffile warns about while reading (broken IFD chains, bad tags), for the notes."""
    handler = _Collect()
    logger = logging.getLogger("tifffile")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def to_chw(array: np.ndarray, axes: str, notes: list[str]) -> np.ndarray:
    """Index extra axes at 0 and bring channel axes to the front, without copying when possible."""
    index = []
    kept = []
    for axis, size in zip(axes, array.shape, strict=True):
        if axis in "YX" or axis in CHANNEL_AXES:
            index.append(slice(None))
            kept.append(axis)
        else:
            index.append(0)
            if size > 1:
                notes.append(
                    f"Axis {axis} ({_AXIS_NAMES.get(axis, 'other')}) has {size} planes;"
                    " read the first."
                )
    array = array[tuple(index)]
    order = [i for i, a in enumerate(kept) if a in CHANNEL_AXES]
    order += [kept.index("Y"), kept.index("X")]
    array = array.transpose(order)
    if len(order) == 2:
        return array[None]
    if len(order) > 3:
        array = array.reshape(-1, *array.shape[-2:])
    return array


_AXIS_NAMES = {
    "Z": "depth",
    "T": "time",
    "A": "angle",
    "P": "phase",
    "R": "tile",
    "H": "lifetime",
    "E": "wavelength",
    "L": "exposure",
    "V": "event",
    "M": "mosaic",
}


def find_band_names(tif: tifffile.TiffFile, series, axes: str, shape: tuple) -> list[str] | None:
    """Band names the file states, or None; a list of the wrong length is ignored by the caller."""
    try:
        if tif.is_ome and tif.ome_metadata:
            names = ome_channel_names(tif.ome_metadata)
            if names:
                return names
        if tif.is_imagej and tif.imagej_metadata:
            labels = tif.imagej_metadata.get("Labels")
            if labels and "C" in axes:
                count = shape[axes.index("C")]
                if len(labels) >= count:
                    return [str(v) for v in labels[:count]]
        page = tif.pages.first
        gdal = page.tags.get(42112)
        if gdal is not None:
            names = gdal_band_names(str(gdal.value))
            if names:
                return names
        for meta in tif.shaped_metadata or ():
            for key in ("band_names", "channel_names", "bands"):
                if isinstance(meta.get(key), list):
                    return [str(v) for v in meta[key]]
        if page.description.startswith("{"):
            meta = json.loads(page.description)
            for key in ("band_names", "channel_names", "bands"):
                if isinstance(meta.get(key), list):
                    return [str(v) for v in meta[key]]
    except (ValueError, KeyError, TypeError, ET.ParseError):
        return None  # names are a courtesy; a broken metadata block must not stop the read
    return None


def ome_channel_names(xml: str) -> list[str] | None:
    """Channel Name attributes of the first OME Image."""
    root = ET.fromstring(xml)
    for element in root.iter():
        if element.tag.endswith("}Pixels") or element.tag == "Pixels":
            names = [c.get("Name") for c in element if c.tag.endswith("Channel")]
            if names and all(names):
                return [str(n) for n in names]
            return None
    return None


def gdal_band_names(xml: str) -> list[str] | None:
    """Per-band DESCRIPTION items from GDAL_METADATA XML, in band order."""
    root = ET.fromstring(xml)
    found: dict[int, str] = {}
    for item in root.iter("Item"):
        if item.get("sample") is None or not item.text:
            continue
        if item.get("role") == "description" or item.get("name", "").upper() == "DESCRIPTION":
            found[int(item.get("sample"))] = item.text.strip()
    if not found or sorted(found) != list(range(len(found))):
        return None
    return [found[i] for i in range(len(found))]
