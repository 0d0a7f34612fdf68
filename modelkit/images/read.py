"""Read an uploaded file (bytes) into a (C, H, W) array plus the metadata a person needs to see.

Public API (stable; the app and engine code against it)::

    read_image(data: bytes, filename: str, *, layout: str = "auto",
               limits: ReadLimits | None = None) -> ImageArray
    ImageArray   dataclass: data (C, H, W) in the file's dtype, filename, format, original_shape,
                 axes, dtype, value_range, band_names, nan_count, notes;
                 .num_channels / .height / .width
    ReadLimits   dataclass: max_pixels (per plane), max_channels, max_bytes (decoded)

Formats: PNG, JPEG, WebP, BMP, GIF (Pillow; 16-bit colour PNG through imagecodecs, since Pillow
truncates it; the pixels of grayscale and RGB JPEGs through imagecodecs, see ``decode_jpeg``),
TIFF / BigTIFF / OME-TIFF / ImageJ (tifffile + imagecodecs, see ``io_tiff``), NPY and NPZ
(numpy, ``allow_pickle=False``). The format is found from the file's first bytes, not its
name; a name that disagrees is reported in ``notes``.

Safety: sizes are checked from headers before anything is decoded; object, complex, string and
structured dtypes are refused; files are read from memory only, so an OME-TIFF cannot pull pixels
from other files on the server. Every failure raises ``ImageReadError`` with a message that says
which file, what is wrong and what would work.

NaN and Inf: kept in ``data`` as stored, counted in ``nan_count`` (all non-finite values) and
reported in ``notes``; ``value_range`` covers the finite values only. ``preprocess`` and the display
helpers replace each non-finite value with the minimum finite value of its band (0 when a band has
none) before scaling.
"""

from __future__ import annotations

import io
import re

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from modelkit.errors import ImageReadError
from modelkit.images.limits import ImageArray, ReadLimits, check_size, fail

LAYOUTS = ("auto", "CHW", "HWC")


def sniff(data: bytes) -> str | None:
    """The format from the first bytes, or None when no reader here knows them."""
    head = data[:16]
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "npz"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"BM"):
        return "bmp"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    return None


_EXTENSIONS = {
    "npy": {".npy"},
    "npz": {".npz"},
    "tiff": {".tif", ".tiff", ".ome.tif", ".ome.tiff"},
    "png": {".png"},
    "jpeg": {".jpg", ".jpeg", ".jpe", ".jfif"},
    "webp": {".webp"},
    "bmp": {".bmp", ".dib"},
    "gif": {".gif"},
}


def read_image(
    data: bytes, filename: str, *, layout: str = "auto", limits: ReadLimits | None = None
) -> ImageArray:
    """Decode ``data`` (the uploaded file's bytes) into an ImageArray with data in (C, H, W).

    ``layout`` applies to NPY/NPZ 3-D arrays: "CHW", "HWC", or "auto" (the smaller of the first
    and last axes holds the channels; the choice is written in ``notes``). Image files carry their
    own layout. Raises ImageReadError for anything that cannot be read safely.
    """
    filename = str(filename or "upload")
    if layout not in LAYOUTS:
        raise fail(filename, f"layout '{layout}' is not known", f"Use one of {', '.join(LAYOUTS)}.")
    limits = limits or ReadLimits()
    if not data:
        raise fail(filename, "the file is empty (0 bytes)", "Upload the file again.")
    kind = sniff(bytes(data[:16]))
    if kind is None:
        raise fail(
            filename,
            "its contents are not a PNG, JPEG, WebP, BMP, GIF, TIFF, NPY or NPZ "
            "file (whatever its name says)",
            "Save it in one of those formats.",
        )
    notes: list[str] = []
    suffix = filename.lower()
    known = set().union(*_EXTENSIONS.values())
    if any(suffix.endswith(e) for e in known) and not any(
        suffix.endswith(e) for e in _EXTENSIONS[kind]
    ):
        notes.append(
            f"The file name says otherwise, but its contents are {kind.upper()}; read as such."
        )
    try:
        if kind == "tiff":
            from modelkit.images.tiff import read_tiff

            array, original_shape, axes, band_names, more = read_tiff(data, filename, limits)
        elif kind in ("npy", "npz"):
            from modelkit.images.npy import read_npy, read_npz

            reader = read_npy if kind == "npy" else read_npz
            array, original_shape, axes, more = reader(data, filename, layout, limits)
            band_names = None
        else:
            array, original_shape, axes, more = read_pillow(data, filename, kind, limits)
            band_names = None
    except ImageReadError:
        raise
    except MemoryError as exc:
        raise fail(
            filename, "there is not enough memory to decode it", "Upload a smaller image."
        ) from exc
    except Exception as exc:  # any decoder failure on corrupt input is the user's file, not a bug
        raise fail(
            filename,
            f"the {kind.upper()} data is damaged or incomplete ({decoder_reason(exc)})",
            "Check that the upload finished and the file opens elsewhere.",
        ) from exc
    notes.extend(more)
    return finish(array, filename, kind, original_shape, axes, band_names, notes)


def decoder_reason(exc: Exception) -> str:
    """A decoder's complaint, readable: no object reprs with memory addresses, one short line."""
    if isinstance(exc, UnidentifiedImageError):
        return "its header cannot be decoded"
    text = re.sub(r"<[^<>]* at 0x[0-9a-fA-F]+>", "the upload", str(exc)).strip()
    text = text.splitlines()[0] if text else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def finish(
    array: np.ndarray,
    filename: str,
    kind: str,
    original_shape: tuple[int, ...],
    axes: str,
    band_names: list[str] | None,
    notes: list[str],
) -> ImageArray:
    """Count non-finite values, take the value range, and build the ImageArray."""
    if not array.dtype.isnative:  # big-endian NPY: torch and most code want native order
        array = array.astype(array.dtype.newbyteorder("="))
    if array.dtype == bool:
        array = array.astype(np.uint8)
        notes.append("True/False values read as 1/0.")
    nan_count = 0
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        nan_count = int(array.size - np.count_nonzero(finite))
        if nan_count:
            notes.append(
                f"{nan_count:,} values are NaN or infinite; they are kept here and "
                "replaced by their band's smallest finite value when preprocessing."
            )
            values = array[finite]
            low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        else:
            low, high = float(array.min()), float(array.max())
    else:
        low, high = float(array.min()), float(array.max())
    if band_names is not None and len(band_names) != array.shape[0]:
        band_names = None
    return ImageArray(
        data=array,
        filename=filename,
        format=kind,
        original_shape=tuple(original_shape),
        axes=axes,
        dtype=str(array.dtype),
        value_range=(low, high),
        band_names=band_names,
        nan_count=nan_count,
        notes=notes,
    )


# ---- Pillow formats --------------------------------------------------------------------------

_PNG_COLOUR_16 = {2: "RGB", 6: "RGBA"}  # PNG colour types that Pillow truncates at 16 bits


def read_pillow(data: bytes, filename: str, kind: str, limits: ReadLimits):
    """PNG/JPEG/WebP/BMP/GIF through Pillow, size-checked before pixels are decoded."""
    if kind == "png" and len(data) > 26 and data[24] == 16 and data[25] in _PNG_COLOUR_16:
        return read_png16(data, filename, limits)
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise fail(
            filename, "it declares more pixels than is safe to decode", "Downscale it first."
        ) from exc
    notes: list[str] = []
    width, height = img.size
    bands = len(img.getbands())
    check_size((bands if img.mode != "P" else 4, height, width), 4, filename, limits)
    if getattr(img, "n_frames", 1) > 1:
        notes.append(f"The file has {img.n_frames} frames; read the first.")
    original_mode = img.mode
    orientation = img.getexif().get(0x0112, 1)
    turned = [f"Rotated/flipped upright from EXIF orientation {orientation}."]
    if kind == "jpeg" and img.mode in ("L", "RGB"):
        array = decode_jpeg(data, orientation)
        if array is not None:
            img.close()
            notes += turned if orientation in range(2, 9) else []
            if array.ndim == 2:
                return array[None], array.shape, "YX", notes
            return np.moveaxis(array, -1, 0), array.shape, "YXS", notes
    if orientation in range(2, 9):  # exif_transpose would otherwise still copy the whole image
        img = ImageOps.exif_transpose(img)
        notes += turned
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        notes.append(f"Palette colours expanded to {img.mode}.")
    elif img.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("RGB")
        notes.append(f"{original_mode} colours converted to RGB.")
    elif img.mode == "1":
        img = img.convert("L")
        notes.append("1-bit image read as 0/255.")
    elif img.mode == "PA":
        img = img.convert("RGBA")
    array = pillow_pixels(img)
    img.close()
    if img.mode == "I" and array.size and array.min() >= 0 and array.max() <= 65535:
        array = array.astype(np.uint16)  # a 16-bit grayscale PNG that Pillow widened to int32
    elif img.mode.startswith("I;16"):
        array = array.astype(np.uint16)
    original_shape = array.shape
    if array.ndim == 2:
        return array[None], original_shape, "YX", notes
    axes = "YXS"
    return np.moveaxis(array, -1, 0), original_shape, axes, notes


# EXIF orientation -> the numpy view that turns an (H, W, ...) array upright
_UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: a.swapaxes(0, 1)[:, ::-1],
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: a.swapaxes(0, 1)[::-1],
}


def decode_jpeg(data: bytes, orientation: int) -> np.ndarray | None:
    """(H, W) or (H, W, 3) uint8 pixels of a grayscale or RGB JPEG, turned upright, or None to
    leave the file to Pillow (which then decodes it or says what is wrong).

    imagecodecs' libjpeg-turbo writes straight into the result: 1x the array at peak, against
    Pillow's 2.3x (it keeps RGB at 4 bytes a pixel while the pixels are copied out), and about
    twice as fast; the pixels equal Pillow's (tests/test_io.py checks). It fills a truncated
    file with gray instead of failing, so only files that end with the end-of-image marker
    come here."""
    import imagecodecs

    if not data.endswith(b"\xff\xd9"):
        return None
    try:
        array = imagecodecs.jpeg8_decode(data)
    except Exception:
        return None
    if orientation in _UPRIGHT:
        array = np.ascontiguousarray(_UPRIGHT[orientation](array))
    return array


def pillow_pixels(img: Image.Image, strip_bytes: int = 1 << 20) -> np.ndarray:
    """np.asarray(img), copied out in strips of rows.

    np.asarray goes through img.tobytes(), which holds the whole image twice more (its chunks
    and their join) beside Pillow's own buffer: 3.3x the array at peak for a photo. Strips
    keep that to Pillow's buffer plus the array (2.3x: Pillow stores RGB at 4 bytes a pixel)."""
    width, height = img.size
    if height == 0 or width == 0:
        return np.asarray(img)
    first = np.asarray(img.crop((0, 0, width, 1)))
    out = np.empty((height, *first.shape[1:]), dtype=first.dtype)
    rows = max(1, strip_bytes // max(1, first.nbytes))
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        out[top:bottom] = np.asarray(img.crop((0, top, width, bottom)))
    return out


def read_png16(data: bytes, filename: str, limits: ReadLimits):
    """16-bit RGB(A) PNG: decoded by imagecodecs, which keeps all 16 bits."""
    import imagecodecs

    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    check_size((len(_PNG_COLOUR_16[data[25]]), height, width), 2, filename, limits)
    array = imagecodecs.png_decode(data)
    return np.moveaxis(array, -1, 0), array.shape, "YXS", []
