"""Windows of a TIFF, decoding only the tiles or strips they touch.

The bands of a scene are the samples of its pages: one page with C samples (interleaved,
``planarconfig`` contig, or one plane per sample, separate), or C pages of one band each (the
first series of the file), or both. A window reads, per page, the segments (tiles or strips)
that overlap it, by their byte offsets (``page.dataoffsets`` / ``databytecounts``), decodes them
with tifffile's own decoder (``page.decode``: every compression and predictor it knows) and
copies the overlap out. Uncompressed strips are read row by row, so a file stored as one huge
uncompressed strip still costs a window. A compressed segment larger than ``SEGMENT_BYTES``
decoded is refused in words before anything is decoded: the file cannot be read window by
window. Decoded segments are kept in a small LRU (``CACHE_BYTES``) because neighbouring windows
share the segments on their edges.

The file is opened with multi-file OME turned off (as ``images.tiff`` does), and its chain of
pages is walked first (``images.tiff.check_structure``) so that a looping chain is refused.
"""

from __future__ import annotations

import io
import math
import mmap
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tifffile

from modelkit.errors import ImageReadError
from modelkit.images.limits import check_dtype, fail
from modelkit.images.read import decoder_reason
from modelkit.images.tiff import CHANNEL_AXES, check_structure, find_band_names, tifffile_warnings

SEGMENT_BYTES = 256 * 2**20  # one compressed tile or strip decoded must fit in this
CACHE_BYTES = 64 * 2**20  # decoded segments kept for the next window
DECODE_THREADS = min(4, os.cpu_count() or 1)


class TiffWindows:
    """A TIFF opened for window reads: ``shape`` (C, H, W), ``dtype``, ``band_names``,
    ``page`` (the first page, for its tags), ``tiled``; ``read(top, bottom, left, right,
    bands)`` -> (len(bands), h, w)."""

    def __init__(self, source: str | os.PathLike | bytes, name: str) -> None:
        self.name = name
        handle = self._handle(source)
        try:
            self._open(handle)
        except ImageReadError:
            handle.close()
            raise
        except Exception as exc:  # tifffile's complaint about a broken file, in words
            handle.close()
            raise fail(name, f"the TIFF data is damaged or incomplete ({decoder_reason(exc)})",
                       "Check that the file is complete and opens elsewhere.") from exc  # fmt: skip

    def _handle(self, source):
        """An open file (walked first: a looping chain of pages is refused)."""
        if isinstance(source, bytes | bytearray | memoryview):
            data = bytes(source)
            check_structure(data, self.name)
            return io.BytesIO(data)
        handle = open(Path(source), "rb")  # noqa: SIM115 - closed by close()
        try:
            if os.fstat(handle.fileno()).st_size < 8:
                raise fail(self.name, "the file is too short to be a TIFF", "Save it again.")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                check_structure(mapped, self.name)
        except BaseException:
            handle.close()
            raise
        return handle

    def _open(self, handle) -> None:
        name = self.name
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="modelkit-decode")
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._cached = 0
        with tifffile_warnings() as warned:
            self.tif = tifffile.TiffFile(handle, _multifile=False)
            series = self.tif.series
        if not series:
            raise fail(name, "the TIFF holds no images", "Save the scene again.")
        self.notes = [f"The TIFF reader warned: {w}" for w in dict.fromkeys(warned)]
        first = series[0]
        # (page or frame: its own offsets, keyframe: its layout and decoder), one per page
        self.pages = [(p, p.keyframe) for p in first.pages]
        if len(series) > 1 and all(
            s.axes == "YX" and s.shape == first.shape and s.dtype == first.dtype for s in series
        ):
            self.pages = [(s.pages[0], s.pages[0].keyframe) for s in series]
            self.notes.append(
                f"The TIFF holds {len(series)} images of the same size; read as one band each."
            )
        self.page = self.tif.pages.first
        self._check_layout(first)
        key = self.pages[0][1]
        self.dtype = np.dtype(key.dtype).newbyteorder("=")
        check_dtype(self.dtype, name)
        self.height, self.width = int(key.imagelength), int(key.imagewidth)
        self.bands = [
            (p, s) for p in range(len(self.pages)) for s in range(self.pages[p][1].samplesperpixel)
        ]
        self.shape = (len(self.bands), self.height, self.width)
        self.tiled = bool(key.is_tiled)
        names = find_band_names(self.tif, first, first.axes, tuple(first.shape))
        self.band_names = names if names and len(names) == len(self.bands) else None
        for _, key in self.pages[:1]:  # every page has the keyframe's layout
            self._check_segments(key)

    def _check_layout(self, series) -> None:
        extra = [
            (a, n)
            for a, n in zip(series.axes, series.shape, strict=True)
            if a not in CHANNEL_AXES + "YX" and n > 1
        ]
        if extra:
            axis, size = extra[0]
            raise fail(
                self.name,
                f"the scene has {size} planes along axis {axis} (depth or time), not only bands",
                "Save one 2-D image per band.",
            )
        key = self.pages[0][1]
        for page, frame_key in self.pages:
            same = (
                frame_key.imagelength,
                frame_key.imagewidth,
                frame_key.dtype,
                frame_key.imagedepth,
            ) == (key.imagelength, key.imagewidth, key.dtype, 1)
            if not same:
                raise fail(
                    self.name,
                    "its pages differ in size or type, or hold volumes",
                    "Save every band at the same size and type.",
                )
            if page.dataoffsets is None or not len(page.dataoffsets):
                raise fail(self.name, "a page has no pixel data", "Save the scene again.")

    def _check_segments(self, page) -> None:
        if page.compression == 1:
            return
        rows, cols = (
            (page.tilelength, page.tilewidth)
            if page.is_tiled
            else (min(page.rowsperstrip, page.imagelength), page.imagewidth)
        )
        samples = page.samplesperpixel if page.planarconfig == 1 else 1
        size = rows * cols * samples * np.dtype(page.dtype).itemsize
        if size > SEGMENT_BYTES:
            raise fail(
                self.name,
                f"it stores its pixels in compressed blocks of {size / 2**20:,.0f} MiB each "
                f"({rows:,} rows of {cols:,} pixels), too large to read window by window "
                f"(at most {SEGMENT_BYTES // 2**20} MiB)",
                "Save it tiled, e.g. gdal_translate -co TILED=YES -co COMPRESS=DEFLATE, or "
                "tifffile.imwrite(..., tile=(256, 256)).",
            )

    # --- reading ---------------------------------------------------------------------------
    def read(
        self, top: int, bottom: int, left: int, right: int, bands: list[int] | None = None
    ) -> np.ndarray:
        """The (bands, bottom - top, right - left) window, in the file's dtype."""
        bands = list(range(len(self.bands))) if bands is None else list(bands)
        out = np.empty((len(bands), bottom - top, right - left), self.dtype)
        by_page: dict[int, list[tuple[int, int]]] = {}
        for i, b in enumerate(bands):
            page, sample = self.bands[b]
            by_page.setdefault(page, []).append((i, sample))
        for page_index, wanted in by_page.items():
            self._read_page(page_index, wanted, top, bottom, left, right, out)
        return out

    def _read_page(self, index, wanted, top, bottom, left, right, out) -> None:
        frame, page = self.pages[index]
        if page.compression == 1 and not page.is_tiled and page.predictor == 1:
            self._read_raw_rows(frame, page, wanted, top, bottom, left, right, out)
            return
        rows, cols = (
            (page.tilelength, page.tilewidth)
            if page.is_tiled
            else (page.rowsperstrip, page.imagewidth)
        )
        down = math.ceil(page.imagelength / rows)
        across = math.ceil(page.imagewidth / cols)
        separate = page.planarconfig == 2 and page.samplesperpixel > 1
        planes = sorted({s for _, s in wanted}) if separate else [0]
        places = [(plane * down * across + r * across + c, r * rows, c * cols, plane)
                  for plane in planes for r in range(top // rows, (bottom - 1) // rows + 1)
                  for c in range(left // cols, (right - 1) // cols + 1)]  # fmt: skip
        blocks = self._segments(index, frame, page, [place[0] for place in places])
        for (_, y0, x0, plane), block in zip(places, blocks, strict=True):
            ys = slice(max(top, y0), min(bottom, y0 + block.shape[0]))
            xs = slice(max(left, x0), min(right, x0 + block.shape[1]))
            if ys.start >= ys.stop or xs.start >= xs.stop:
                continue
            part = block[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
            for i, sample in wanted:
                if separate and sample != plane:
                    continue
                out[i, ys.start - top : ys.stop - top, xs.start - left : xs.stop - left] = part[
                    ..., 0 if separate else sample
                ]

    def _segments(self, page_index: int, frame, page, segments: list[int]) -> list[np.ndarray]:
        """The decoded (h, w, samples) blocks of these segments: from the cache, or read in
        file order and decoded on DECODE_THREADS threads (the decoders release the GIL)."""
        found: dict[int, np.ndarray] = {}
        raw: dict[int, bytes] = {}
        with self._lock:
            for segment in segments:
                key = (page_index, segment)
                if key in self._cache:
                    self._cache.move_to_end(key)
                    found[segment] = self._cache[key]
            handle = self.tif.filehandle
            for segment in sorted(set(segments) - set(found), key=lambda k: frame.dataoffsets[k]):
                handle.seek(frame.dataoffsets[segment])
                raw[segment] = handle.read(frame.databytecounts[segment])
        todo = list(raw)
        decoded = self._pool.map(lambda k: self._decode(page, k, raw[k]), todo) if len(
            todo) > 1 else [self._decode(page, k, raw[k]) for k in todo]  # fmt: skip
        with self._lock:
            for segment, block in zip(todo, decoded, strict=True):
                found[segment] = block
                self._cache[(page_index, segment)] = block
                self._cached += block.nbytes
            while self._cached > CACHE_BYTES and len(self._cache) > 1:
                _, dropped = self._cache.popitem(last=False)
                self._cached -= dropped.nbytes
        return [found[segment] for segment in segments]

    def _decode(self, page, segment: int, raw: bytes) -> np.ndarray:
        args = {}
        if page.compression in (6, 7, 34892, 33007):
            args = {"jpegtables": page.jpegtables, "jpegheader": page.jpegheader}
        try:
            decoded, _, shape = page.decode(raw or None, segment, **args)
        except Exception as exc:  # a damaged segment is the user's file, not a bug
            raise fail(
                self.name,
                f"a block of pixels is damaged ({type(exc).__name__}: {str(exc)[:120]})",
                "Check that the file is complete.",
            ) from exc
        if decoded is None:  # an empty segment: tifffile's fill value, 0
            decoded = np.zeros(shape, self.dtype)
        return decoded.reshape(decoded.shape[-3:])

    def _read_raw_rows(self, frame, page, wanted, top, bottom, left, right, out) -> None:
        """Uncompressed strips: the bytes of the window's rows only, a strip at a time."""
        dtype = np.dtype(page.dtype).newbyteorder(self.tif.byteorder)
        samples = page.samplesperpixel
        separate = page.planarconfig == 2 and samples > 1
        per_pixel = 1 if separate else samples
        row_bytes = page.imagewidth * per_pixel * dtype.itemsize
        rows = page.rowsperstrip
        strips = math.ceil(page.imagelength / rows)
        for plane in sorted({s for _, s in wanted}) if separate else [0]:
            for strip in range(top // rows, (bottom - 1) // rows + 1):
                first, last = max(top, strip * rows), min(bottom, (strip + 1) * rows)
                offset = (
                    frame.dataoffsets[plane * strips + strip] + (first - strip * rows) * row_bytes
                )
                with self._lock:
                    self.tif.filehandle.seek(offset)
                    raw = self.tif.filehandle.read((last - first) * row_bytes)
                values = np.frombuffer(raw, dtype).reshape(last - first, -1, per_pixel)
                for i, sample in wanted:
                    if separate and sample != plane:
                        continue
                    out[i, first - top : last - top] = values[
                        :, left:right, 0 if separate else sample
                    ]

    def close(self) -> None:
        self._pool.shutdown()
        self.tif.close()
