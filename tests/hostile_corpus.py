"""Malformed and hostile uploads for ``modelkit.images.read.read_image``, described as data.

Each ``Case`` names a file, says how to build its bytes (built here in code, no binary blobs) and
what reading it must end in: an ``ImageReadError`` whose message contains ``error`` (so a person
knows what is wrong), or a read with the given shape, dtype, NaN count and value range.
``test_hostile_files.py`` runs them all in a memory-limited child process; ``SEEDS`` are the valid
files its fuzzer mutates.

Facts the expectations rest on (checked in ``modelkit.images.read``): the format comes from
the first bytes, not the name (a name that disagrees gives a note); NaN/Inf are kept and
counted in ``nan_count``; sizes are checked from headers before decoding (default ReadLimits:
100 M pixels per band, 512 channels, 2 GiB decoded); files are read from memory only.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tifffile
from PIL import Image

# Paths OME-XML in the corpus points at; the test plants SECRET_NAME in the child's working folder.
SECRET_NAME = "secret.ome.tif"
TRAVERSALS = ("../../../../etc/passwd", "/etc/passwd", "../" + SECRET_NAME, SECRET_NAME)


@dataclass(frozen=True)
class Case:
    """One upload and the outcome read_image must give for it."""

    name: str
    category: str
    filename: str
    build: Callable[[], bytes]
    error: str | None = None  # phrase the ImageReadError message must contain
    shape: tuple[int, ...] | None = None  # (C, H, W) of a read
    dtype: str | None = None
    nan_count: int = 0
    value_range: tuple[float, float] | None = None
    note: str | None = None  # phrase one of the read's notes must contain

    def make(self) -> tuple[str, bytes]:
        return self.filename, self.build()


# ---- encoders ------------------------------------------------------------------------------


def rand(shape: tuple[int, ...], high: int, dtype: str) -> np.ndarray:
    """Random values, the same on every call (seeds must build the same bytes every time)."""
    return np.random.default_rng(6).integers(0, high, shape, dtype=dtype)


def rgb(h: int = 16, w: int = 16) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([yy * 9, xx * 7, yy + xx], axis=-1).astype(np.uint8)  # smooth, JPEG-able


def pil(array: np.ndarray, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def tif(array: np.ndarray, **kwargs) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **kwargs)
    return buffer.getvalue()


def npy(array: np.ndarray, **kwargs) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, **kwargs)
    return buffer.getvalue()


def npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def npy_raw(header: str, payload: bytes = b"", version: bytes = b"\x01\x00") -> bytes:
    """An NPY file with a hand-written header dict (padded as numpy pads it)."""
    text = header.encode("latin1")
    pad = 64 - (10 + len(text) + 1) % 64
    text += b" " * pad + b"\n"
    size = struct.pack("<H" if version[0] == 1 else "<I", len(text))
    return b"\x93NUMPY" + version + size + text + payload


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_raw(width: int, height: int, idat: bytes, colour: int = 0, depth: int = 8, extra=b""):
    """A PNG from its parts: IHDR as given (CRC correct), optional chunks, one IDAT, IEND."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra
            + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b""))  # fmt: skip


def zeros_deflate(nbytes: int, wrapper: str) -> bytes:
    """A valid deflate stream of ``nbytes`` zeros, built from one repeated 1 MiB block (fast).

    ``wrapper`` is "zlib" (2-byte header, Adler-32 trailer, as TIFF and PNG use) or "raw" (zip)."""
    mib = 2**20
    assert nbytes % mib == 0
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(bytes(mib)) + comp.flush(zlib.Z_FULL_FLUSH)
    body = block * (nbytes // mib) + comp.flush()
    if wrapper == "raw":
        return body
    adler = ((nbytes % 65521) << 16) | 1  # Adler-32 of n zero bytes
    return b"\x78\xda" + body + struct.pack(">I", adler)


def crc_of_zeros_after(prefix: bytes, nbytes: int) -> int:
    crc = zlib.crc32(prefix)
    block = bytes(2**20)
    for _ in range(nbytes // len(block)):
        crc = zlib.crc32(block, crc)
    return crc


def zip_raw(members: list[tuple[str, bytes, int, int, int, int]]) -> bytes:
    """A zip from (name, stored bytes, method, crc, uncompressed size, flags) without checks."""
    out, central = b"", b""
    for name, stored, method, crc, size, flags in members:
        encoded = name.encode()
        head = struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, flags, method, 0, 0x21,
                           crc, len(stored), size, len(encoded), 0)  # fmt: skip
        central += struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, flags, method, 0, 0x21,
                               crc, len(stored), size, len(encoded), 0, 0, 0, 0, 0,
                               len(out)) + encoded  # fmt: skip
        out += head + encoded + stored
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, len(members), len(members),
                      len(central), len(out), 0)  # fmt: skip
    return out + central + end


def stored_member(name: str, payload: bytes, method: int = 0, flags: int = 0):
    return (name, payload, method, zlib.crc32(payload), len(payload), flags)


TIFF_TYPES = {1: "B", 2: "s", 3: "H", 4: "I"}


def tiff_raw(entries: list[tuple[int, int, list]], data: bytes = b"", next_ifd: int = 0) -> bytes:
    """A little-endian TIFF with one IFD at offset 8 written exactly as given, pixel data after it.

    Entries are (tag, type, values); the value "DATA" stands for the offset of ``data``;
    ``next_ifd`` may point anywhere, including back at the IFD itself (8)."""
    entries = sorted(entries)
    data_at = 8 + 2 + 12 * len(entries) + 4
    tail_at, tail, packed = data_at + len(data), b"", []
    for tag, kind, values in entries:
        values = [data_at if v == "DATA" else v for v in values]
        raw = values[0] if kind == 2 else struct.pack(f"<{len(values)}{TIFF_TYPES[kind]}", *values)
        count = len(raw) if kind == 2 else len(values)
        if len(raw) > 4:
            raw, tail = struct.pack("<I", tail_at + len(tail)), tail + raw
        packed.append(struct.pack("<HHI", tag, kind, count) + raw.ljust(4, b"\0"))
    ifd = struct.pack("<H", len(entries)) + b"".join(packed) + struct.pack("<I", next_ifd)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + data + tail


def strip_tiff(width, height, data, *, compression=1, offsets=("DATA",), counts=None,
               samples=1, bits=8, next_ifd=0, rows=None, extra=()) -> bytes:  # fmt: skip
    """One-strip gray (or ``samples``-band contiguous) TIFF with every field overridable."""
    entries = [(256, 4, [width]), (257, 4, [height]), (258, 3, [bits] * min(samples, 8)),
               (259, 3, [compression]), (262, 3, [1]), (273, 4, list(offsets)),
               (277, 3, [samples]), (278, 4, [rows or height]),
               (279, 4, list(counts or [len(data)])), *extra]  # fmt: skip
    return tiff_raw(entries, data, next_ifd)


def patch(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


def flip(data: bytes, offset: int, mask: int = 0xFF) -> bytes:
    return patch(data, offset, bytes([data[offset] ^ mask]))


def jpeg_with_size(width: int, height: int) -> bytes:
    data = pil(rgb(), "JPEG")
    sof = data.index(b"\xff\xc0")
    return patch(data, sof + 5, struct.pack(">HH", height, width))


def gif_with_size(width: int, height: int) -> bytes:
    data = pil(rgb(4, 4)[..., 0], "GIF")
    data = patch(data, 6, struct.pack("<HH", width, height))  # logical screen
    desc = data.index(b"\x2c", 13)  # image descriptor
    return patch(data, desc + 5, struct.pack("<HH", width, height))


def ome_xml(file_name: str) -> str:
    """OME-XML whose second channel lives in another file: ``file_name``."""
    uuid = "urn:uuid:00000000-0000-0000-0000-00000000000"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" UUID="{uuid}1">'
        '<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint8" '
        'SizeX="8" SizeY="8" SizeC="2" SizeZ="1" SizeT="1"><Channel ID="Channel:0:0"/>'
        '<Channel ID="Channel:0:1"/>'
        f'<TiffData FirstC="0" IFD="0" PlaneCount="1"><UUID FileName="upload.ome.tif">{uuid}1'
        "</UUID></TiffData>"
        f'<TiffData FirstC="1" IFD="0" PlaneCount="1"><UUID FileName="{file_name}">{uuid}2'
        "</UUID></TiffData></Pixels></Image></OME>"
    )


def ome_tiff(file_name: str) -> bytes:
    return tif(np.full((8, 8), 7, np.uint8), description=ome_xml(file_name), metadata=None)


class _Exploit:
    """Unpickling this would end the reading process at once (exit code 86)."""

    def __reduce__(self):
        return (os._exit, (86,))


LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY a "lololololololololololololololol">'
    + "".join(
        f'<!ENTITY {c} "{("&" + p + ";") * 10}">'
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    + ']><svg xmlns="http://www.w3.org/2000/svg">&i;</svg>'
)

FLOATS = np.linspace(-1, 1, 3 * 8 * 8, dtype=np.float32).reshape(3, 8, 8)
MIXED = FLOATS.copy()
MIXED[0, 0, :3] = [np.nan, np.inf, -np.inf]

# ---- valid seed files (also the fuzzer's seeds) --------------------------------------------

SEEDS: dict[str, Callable[[], bytes]] = {
    "rgb.png": lambda: pil(rgb(), "PNG"),
    "gray16.png": lambda: pil(rgb()[..., 0].astype(np.uint16) * 257, "PNG"),
    "palette.png": lambda: (lambda b: (Image.fromarray(rgb()).quantize(8).save(b, "PNG"), b)[1])(
        io.BytesIO()
    ).getvalue(),
    "rgb.jpg": lambda: pil(rgb(), "JPEG", quality=90),
    "gray.gif": lambda: pil(rgb()[..., 1], "GIF"),
    "rgb.bmp": lambda: pil(rgb(), "BMP"),
    "rgb.webp": lambda: pil(rgb(), "WEBP", lossless=True),
    "bands.tif": lambda: tif(
        rand((3, 16, 16), 999, "uint16"), compression="zlib", photometric="minisblack"
    ),  # fmt: skip
    "tiled.tif": lambda: tif(
        rand((32, 32, 2), 255, "uint8"),
        tile=(16, 16),
        compression="lzw",
        photometric="minisblack",
        planarconfig="contig",
    ),  # fmt: skip
    "big.tif": lambda: tif(FLOATS, bigtiff=True, photometric="minisblack"),
    "cells.ome.tif": lambda: tif(np.zeros((2, 8, 8), np.uint16), ome=True),
    "array.npy": lambda: npy(FLOATS),
    "arrays.npz": lambda: npz(image=FLOATS[:2], mask=FLOATS[:1]),
}


def seed(name: str) -> Callable[[], bytes]:
    return SEEDS[name]


def cut(name: str, at: int | float) -> Callable[[], bytes]:
    """The seed truncated at a byte offset, or at a fraction of its length."""

    def build() -> bytes:
        data = SEEDS[name]()
        return data[: at if isinstance(at, int) else int(len(data) * at)]

    return build


# ---- the corpus ----------------------------------------------------------------------------

DAMAGED = "damaged or incomplete"
NOT_IMAGE = "not a PNG, JPEG"
TOO_BIG = "more pixels than is safe"
PIXELS = "pixels per band"
OBJECTS = "Python objects"
NOT_NUMBER = "not a number type"

CASES: list[Case] = []


def err(name: str, filename: str, build: Callable[[], bytes], phrase: str) -> None:
    CASES.append(Case(name, name.split("/")[0], filename, build, error=phrase))


def ok(name: str, filename: str, build: Callable[[], bytes], shape, dtype, **more) -> None:
    CASES.append(Case(name, name.split("/")[0], filename, build, shape=shape, dtype=dtype, **more))


# truncated at several points
for fname, points in {
    "rgb.png": (8, 20, 40, 0.5, -20),
    "gray16.png": (0.5,),
    "rgb.jpg": (3, 100, 0.5, -2),
    "bands.tif": (6, 20, 0.5),
    "big.tif": (0.3,),
    "tiled.tif": (0.6,),
    "array.npy": (7, 30, 0.5),  # NPY messages say "damaged", or "damaged or incomplete"
    "arrays.npz": (0.5, 0.9),
    "gray.gif": (0.5,),
    "rgb.bmp": (0.5,),
    "rgb.webp": (0.5,),
}.items():
    for at in points:
        phrase = "damaged" if fname.endswith(".npy") else DAMAGED
        err(f"truncated/{fname}@{at}", fname, cut(fname, at), phrase)

# bit flips and broken fields
err("corrupt/png IHDR CRC", "a.png", lambda: flip(SEEDS["rgb.png"](), 29), DAMAGED)
err("corrupt/png IDAT bytes", "a.png", lambda: flip(flip(SEEDS["rgb.png"](), 45), 60), DAMAGED)
err("corrupt/png colour type 5", "a.png", lambda: png_raw(4, 4, zlib.compress(bytes(20)), 5),
    DAMAGED)  # fmt: skip
err("corrupt/png bit depth 3", "a.png", lambda: png_raw(4, 4, zlib.compress(bytes(20)), 0, 3),
    DAMAGED)  # fmt: skip
err("corrupt/png IDAT not deflate", "a.png", lambda: png_raw(4, 4, b"\x78\x9c" + b"\xff" * 30),
    DAMAGED)  # fmt: skip
err(
    "corrupt/jpeg SOF precision",
    "a.jpg",
    lambda: flip(SEEDS["rgb.jpg"](), SEEDS["rgb.jpg"]().index(b"\xff\xc0") + 4, 0x0F),
    DAMAGED,
)
err(
    "corrupt/jpeg Huffman table",
    "a.jpg",
    lambda: flip(SEEDS["rgb.jpg"](), SEEDS["rgb.jpg"]().index(b"\xff\xc4") + 3, 0x10),
    DAMAGED,
)
err("corrupt/tiff unknown compression", "a.tif", lambda: strip_tiff(4, 4, bytes(16), compression=
    12345), DAMAGED)  # fmt: skip
err(
    "corrupt/tiff zlib strip garbage",
    "a.tif",
    lambda: strip_tiff(4, 4, b"\x78\x9c" + bytes(range(40)), compression=8),
    DAMAGED,
)
err("corrupt/tiff first IFD past end", "a.tif", lambda: b"II*\x00\xff\xff\xff\x7f" + bytes(64),
    "holds no images")  # fmt: skip
err("corrupt/tiff bits per sample 0", "a.tif", lambda: strip_tiff(4, 4, bytes(16), bits=0),
    DAMAGED)  # fmt: skip
err(
    "corrupt/tiff IFD points to itself",
    "loop.tif",
    lambda: strip_tiff(4, 4, bytes(range(16)), next_ifd=8),
    "loops back",
)
err("corrupt/tiff two IFDs point at each other", "loop.tif", lambda: two_page_loop(), "loops back")
err("corrupt/tiff 8 bytes inserted in the IFD", "a.tif",  # tifffile looped forever, growing
    lambda: (lambda d: d[:38] + b'\xae#\xc7<\x97\xec"\x90' + d[38:])(SEEDS["bands.tif"]()),
    DAMAGED)  # fmt: skip
ok("corrupt/tiff tag value offset past end", "a.tif", lambda: strip_tiff(4, 4, bytes(range(16)),
   extra=[(305, 2, [b"software name that is long"])])[:-10], (1, 4, 4), "uint8",
   note="TIFF reader warned")  # fmt: skip
err("corrupt/npy header garbage", "a.npy", lambda: npy_raw("{'descr': '<x9', 'fortran_order': "
    "False, 'shape': (4, 4), }", bytes(64)), "NPY header is damaged")  # fmt: skip
err("corrupt/npy header is code", "a.npy", lambda: npy_raw("__import__('os').getcwd()"),
    "NPY header is damaged")  # fmt: skip
err("corrupt/npy header not a dict", "a.npy", lambda: npy_raw("[1, 2, 3]"), "NPY header is damaged")
err("corrupt/npy unknown version", "a.npy", lambda: patch(SEEDS["array.npy"](), 6, b"\x09\x00"),
    "NPY header is damaged")  # fmt: skip
err("corrupt/npy bad magic", "a.npy", lambda: patch(SEEDS["array.npy"](), 5, b"Z"), NOT_IMAGE)
err("corrupt/npz member CRC", "a.npz", lambda: flip(SEEDS["arrays.npz"](), 200), DAMAGED)
err(
    "corrupt/npz encrypted member",
    "a.npz",
    lambda: zip_raw([stored_member("image.npy", npy(FLOATS), flags=1)]),
    DAMAGED,
)
err(
    "corrupt/npz unknown compression",
    "a.npz",
    lambda: zip_raw([stored_member("image.npy", npy(FLOATS), method=99)]),
    DAMAGED,
)

# huge declared sizes and decompression bombs
err("bomb/tiff 60000x60000", "a.tif", lambda: strip_tiff(60000, 60000, bytes(16)), PIXELS)
err("bomb/tiff 2^32-1 square", "a.tif", lambda: strip_tiff(2**32 - 1, 2**32 - 1, bytes(16)),
    PIXELS)  # fmt: skip
err("bomb/tiff 65535 samples", "a.tif", lambda: strip_tiff(1, 1, bytes(16), samples=65535),
    "65535 channels")  # fmt: skip
err(
    "bomb/tiff 100000 strip offsets",
    "a.tif",
    lambda: strip_tiff(4, 4, bytes(16), offsets=["DATA"] * 100000, counts=[1] * 100000, rows=1),
    DAMAGED,
)
err("bomb/tiff tag declaring 10^9 values", "a.tif", lambda: tag_count(258, 10**9),
    "declares 1,000,000,000 values")  # fmt: skip
ok(
    "bomb/tiff strip byte count 10^9",
    "a.tif",
    lambda: strip_tiff(4, 4, bytes(range(16)), counts=[10**9]),
    (1, 4, 4),
    "uint8",
)
err(
    "bomb/tiff strip offset past end",
    "a.tif",
    lambda: strip_tiff(4, 4, bytes(16), offsets=[10**6]),
    DAMAGED,
)
err(
    "bomb/tiff tile offsets past end",
    "a.tif",
    lambda: tile_offsets_past_end(),
    DAMAGED,
)
err(
    "bomb/tiff 4 GiB zlib strip in 64x64",
    "a.tif",
    lambda: strip_tiff(64, 64, zeros_deflate(4 * 2**30, "zlib"), compression=8),
    DAMAGED,
)
ok("bomb/tiff 64 MiB zlib strip within limits", "a.tif",
   lambda: strip_tiff(8192, 8192, zeros_deflate(64 * 2**20, "zlib"), compression=8),
   (1, 8192, 8192), "uint8", value_range=(0.0, 0.0))  # fmt: skip
err("bomb/bigtiff 10^6 x 10^6", "a.tif", lambda: patch_bigtiff_size(10**6), PIXELS)
err("bomb/tiff 600 pages", "a.tif", lambda: pages_tiff(600), "600 channels")
err(
    "bomb/png 100000x100000 tiny IDAT",
    "a.png",
    lambda: png_raw(100000, 100000, zlib.compress(bytes(64))),
    TOO_BIG,
)
err(
    "bomb/png 10000x10000 tiny IDAT",
    "a.png",
    lambda: png_raw(10000, 10000, zlib.compress(bytes(64)), 2),
    DAMAGED,
)
ok("bomb/png 1 GiB IDAT in 16x16", "a.png",
   lambda: png_raw(16, 16, zeros_deflate(2**30, "zlib")), (1, 16, 16), "uint8",
   value_range=(0.0, 0.0))  # fmt: skip
err("bomb/png zTXt bomb", "a.png", lambda: png_raw(4, 4, zlib.compress(bytes(20)),
    extra=png_chunk(b"zTXt", b"k\0\0" + zeros_deflate(64 * 2**20, "zlib"))), DAMAGED)  # fmt: skip
err(
    "bomb/png16 100000x100000",
    "a.png",
    lambda: png_raw(100000, 100000, zlib.compress(bytes(64)), 2, 16),
    PIXELS,
)
err("bomb/jpeg 65500x65500", "a.jpg", lambda: jpeg_with_size(65500, 65500), TOO_BIG)
err("bomb/gif 65535x65535", "a.gif", lambda: gif_with_size(65535, 65535), TOO_BIG)
err(
    "bomb/bmp 10^5 x 10^5",
    "a.bmp",
    lambda: patch(SEEDS["rgb.bmp"](), 18, struct.pack("<ii", 100000, 100000)),
    TOO_BIG,
)
err("bomb/svg entity bomb named .png", "a.png", lambda: LAUGHS.encode(), NOT_IMAGE)
err(
    "bomb/npy 75 GiB shape",
    "a.npy",
    lambda: npy_raw("{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 100000, 3), }"),
    PIXELS,
)
err("bomb/npy shape beyond int64", "a.npy", lambda: npy_raw(
    f"{{'descr': '<f8', 'fortran_order': False, 'shape': ({10**30}, 2, {10**30}), }}"),
    "channels; at most")  # fmt: skip
err("bomb/npy 1.9 GiB shape, 100 bytes", "a.npy", lambda: npy_raw(
    "{'descr': '<f4', 'fortran_order': False, 'shape': (5, 9000, 11000), }", bytes(100)),
    "incomplete")  # fmt: skip
err(
    "bomb/npy 1 MB header",
    "a.npy",
    lambda: npy_raw(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), " + " " * 2**20 + "}",
        bytes(16),
        b"\x02\x00",
    ),
    "NPY header is damaged",
)
err(
    "bomb/npy 65535 channels",
    "a.npy",
    lambda: npy_raw("{'descr': '|u1', 'fortran_order': False, 'shape': (65535, 4, 65535), }"),
    "65535 channels",
)
ok("bomb/npz 1 GiB member, 4x4 header", "a.npz", lambda: npz_bomb((4, 4)), (1, 4, 4), "uint8",
   value_range=(0.0, 0.0))  # fmt: skip
err("bomb/npz 1 GiB member, giant header", "a.npz", lambda: npz_bomb((16384, 16384)), PIXELS)
err("bomb/npz member declares 3 GiB", "a.npz", lambda: zip_raw(
    [("image.npy", b"", 0, 0, 3 * 2**30, 0)]), "MiB")  # fmt: skip

# unsafe or meaningless NPY content
err(
    "numpy/pickle that would exit",
    "a.npy",
    lambda: npy(np.array([_Exploit()], dtype=object), allow_pickle=True),
    OBJECTS,
)
err("numpy/object array", "a.npy", lambda: npy(np.array([[1, "a"]], dtype=object),
    allow_pickle=True), OBJECTS)  # fmt: skip
err(
    "numpy/npz pickled first member",
    "a.npz",
    lambda: zip_raw(
        [stored_member("image.npy", npy(np.array([_Exploit()], dtype=object), allow_pickle=True))]
    ),
    OBJECTS,
)
err(
    "numpy/structured dtype",
    "a.npy",
    lambda: npy(np.zeros((4, 4), [("a", "<i4"), ("b", "<f4")])),
    NOT_NUMBER,
)
err("numpy/complex dtype", "a.npy", lambda: npy(np.ones((3, 4, 4), np.complex128)), NOT_NUMBER)
err("numpy/datetime dtype", "a.npy", lambda: npy(np.zeros((4, 4), "M8[s]")), NOT_NUMBER)
err("numpy/bytes dtype", "a.npy", lambda: npy(np.zeros((4, 4), "S3")), NOT_NUMBER)
err("numpy/0-d", "a.npy", lambda: npy(np.float32(3.5)), "0 dimensions")
err("numpy/1-d", "a.npy", lambda: npy(np.arange(10)), "1 dimensions")
err("numpy/5-d", "a.npy", lambda: npy(np.zeros((1, 1, 2, 3, 4), np.uint8)), "5 dimensions")
err("numpy/zero-sized axis", "a.npy", lambda: npy(np.zeros((3, 0, 4), np.uint8)), "empty")
err("numpy/all axes zero", "a.npy", lambda: npy(np.zeros((0, 0), np.float32)), "empty")
ok("numpy/fortran order", "f.npy", lambda: npy(np.asfortranarray(FLOATS)), (3, 8, 8), "float32",
   value_range=(-1.0, 1.0))  # fmt: skip
ok("numpy/big endian float", "b.npy", lambda: npy(FLOATS.astype(">f8")), (3, 8, 8), "float64")
ok("numpy/float16", "h.npy", lambda: npy(FLOATS.astype(np.float16)), (3, 8, 8), "float16")
ok("numpy/npz path-traversing names", "t.npz", lambda: zip_raw(
    [stored_member("../../../../tmp/modelkit-escape.npy", npy(FLOATS)),
     stored_member("/etc/modelkit-escape.npy", npy(FLOATS[:1]))]), (3, 8, 8), "float32",
   note="modelkit-escape")  # fmt: skip
ok("numpy/npz non-npy members first", "m.npz", lambda: zip_raw(
    [stored_member("evil.pkl", pickle.dumps(_Exploit())), stored_member("x.npy", npy(FLOATS))]),
   (3, 8, 8), "float32")  # fmt: skip

# empty files and empty images
for ext in ("png", "jpg", "tif", "tiff", "npy", "npz", "gif", "bmp", "webp", "ome.tif"):
    err(f"empty/zero bytes .{ext}", f"empty.{ext}", lambda: b"", "empty (0 bytes)")
err("empty/png 0x0", "a.png", lambda: png_raw(0, 0, zlib.compress(b"")), DAMAGED)
err("empty/tiff 0x0", "a.tif", lambda: strip_tiff(0, 0, b"", counts=[0]), "empty")
err("empty/tiff without IFD entries", "a.tif", lambda: tiff_raw([]), "no rows and columns")
err("empty/npz without members", "a.npz", lambda: zip_raw([]), "no .npy")

# NaN and Inf must read, counted
ok("nonfinite/npy all NaN", "n.npy", lambda: npy(np.full((3, 8, 8), np.nan, np.float32)),
   (3, 8, 8), "float32", nan_count=192, value_range=(0.0, 0.0))  # fmt: skip
ok("nonfinite/npy all +Inf float64", "i.npy", lambda: npy(np.full((8, 8), np.inf)),
   (1, 8, 8), "float64", nan_count=64)  # fmt: skip
ok("nonfinite/tiff all NaN", "n.tif", lambda: tif(np.full((2, 8, 8), np.nan, np.float32),
   photometric="minisblack"), (2, 8, 8), "float32", nan_count=128)  # fmt: skip
ok("nonfinite/tiff NaN, +Inf, -Inf among values", "m.tif", lambda: tif(MIXED,
   photometric="minisblack"), (3, 8, 8), "float32", nan_count=3,
   value_range=(float(FLOATS[0, 0, 3]), 1.0), note="NaN")  # fmt: skip
ok("nonfinite/npz all NaN", "n.npz", lambda: npz(a=np.full((4, 4), np.nan)), (1, 4, 4),
   "float64", nan_count=16)  # fmt: skip

# contents that disagree with the name: read by content, never by name
err("wrongtype/text named .png", "a.png", lambda: b"just some notes\n" * 4, NOT_IMAGE)
err("wrongtype/html named .tif", "a.tif", lambda: b"<!DOCTYPE html><html></html>", NOT_IMAGE)
err("wrongtype/ELF named .png", "a.png", lambda: b"\x7fELF\x02\x01\x01" + bytes(100), NOT_IMAGE)
err("wrongtype/PDF named .tif", "a.tif", lambda: b"%PDF-1.7\n" + bytes(100), NOT_IMAGE)
err("wrongtype/gzip npy named .npy", "a.npy", lambda: __import__("gzip").compress(
    SEEDS["array.npy"]()), NOT_IMAGE)  # fmt: skip
err("wrongtype/space before PNG signature", "a.png", lambda: b" " + SEEDS["rgb.png"](), NOT_IMAGE)
err("wrongtype/text starting with BM", "notes.txt", lambda: b"BM is a nice name\n", DAMAGED)
err(
    "wrongtype/office zip named .npz",
    "a.npz",
    lambda: zip_raw([stored_member("word/document.xml", b"<w/>")]),
    "no .npy",
)
ok("wrongtype/PNG named .tif", "a.tif", seed("rgb.png"), (3, 16, 16), "uint8", note="PNG")
ok("wrongtype/TIFF named .png", "a.png", seed("bands.tif"), (3, 16, 16), "uint16", note="TIFF")
ok("wrongtype/NPY named .jpg", "a.jpg", seed("array.npy"), (3, 8, 8), "float32", note="NPY")
ok("wrongtype/JPEG named .npy", "a.npy", seed("rgb.jpg"), (3, 16, 16), "uint8", note="JPEG")

# OME-TIFF pointing at other files: only the upload's own pixels are read
for target in TRAVERSALS:
    ok(f"ome/second channel in {target}", "upload.ome.tif", lambda t=target: ome_tiff(t),
       (1, 8, 8), "uint8", value_range=(7.0, 7.0), note="names other files")  # fmt: skip
ok("ome/entity bomb in OME-XML", "laughs.ome.tif", lambda: tif(np.full((8, 8), 7, np.uint8),
   description=LAUGHS.replace("svg", "OME"), metadata=None), (1, 8, 8), "uint8")  # fmt: skip

# edge cases that are valid
ok("edge/1x1 png", "a.png", lambda: pil(np.full((1, 1), 9, np.uint8), "PNG"), (1, 1, 1), "uint8")
ok("edge/1x1 jpeg", "a.jpg", lambda: pil(np.zeros((1, 1, 3), np.uint8), "JPEG"), (3, 1, 1),
   "uint8")  # fmt: skip
ok("edge/1x1 tiff", "a.tif", lambda: tif(np.ones((1, 1), np.uint16)), (1, 1, 1), "uint16")
ok("edge/1x1 npy", "a.npy", lambda: npy(np.ones((1, 1), np.int16)), (1, 1, 1), "int16")
ok("edge/512 channels, the limit", "a.tif", lambda: tif(np.zeros((512, 2, 2), np.uint8),
   photometric="minisblack", planarconfig="separate"), (512, 2, 2), "uint8")  # fmt: skip
err("edge/513 channels", "a.npy", lambda: npy(np.zeros((513, 2, 600), np.uint8)), "513 channels")
ok("edge/bigtiff", "b.tif", seed("big.tif"), (3, 8, 8), "float32")
ok("edge/PNG without IEND", "a.png", cut("rgb.png", -12), (3, 16, 16), "uint8")
ok("edge/100 frame gif", "a.gif", lambda: gif_frames(100), (3, 4, 4), "uint8", note="100 frames")
ok("edge/EXIF orientation 9999", "a.jpg",
   lambda: pil(rgb(), "JPEG", exif=exif_bytes(9999)), (3, 16, 16), "uint8")  # fmt: skip
ok("edge/tiff with 4 MB description", "a.tif",
   lambda: tif(np.ones((4, 4), np.uint8), description="x" * 4 * 2**20, metadata=None),
   (1, 4, 4), "uint8")  # fmt: skip


def patch_bigtiff_size(size: int) -> bytes:
    data = SEEDS["big.tif"]()
    page = tifffile.TiffFile(io.BytesIO(data)).pages.first
    for tag in ("ImageWidth", "ImageLength"):
        t = page.tags[tag]
        fmt = {3: "<H", 4: "<I", 16: "<Q"}[int(t.dtype)]
        size_here = min(size, 2 ** (8 * struct.calcsize(fmt)) - 1)
        data = patch(data, t.valueoffset, struct.pack(fmt, size_here))
    return data


def two_page_loop() -> bytes:
    """Two valid IFDs whose next-IFD offsets point at each other."""
    one = strip_tiff(4, 4, bytes(range(16)))
    end_of_ifd = 8 + 2 + 12 * struct.unpack_from("<H", one, 8)[0]
    ifd = one[8:end_of_ifd]
    return patch(one, end_of_ifd, struct.pack("<I", len(one))) + ifd + struct.pack("<I", 8)


def tile_offsets_past_end() -> bytes:
    """The tiled seed with every TileOffsets value pointing 16 MB past its end."""
    data = SEEDS["tiled.tif"]()
    tag = tifffile.TiffFile(io.BytesIO(data)).pages.first.tags["TileOffsets"]
    at = tag.valueoffset if tag.count > 1 else tag.offset + 8
    return patch(data, at, struct.pack(f"<{tag.count}I", *[2**24] * tag.count))


def tag_count(code: int, count: int) -> bytes:
    """A 4x4 TIFF whose tag ``code`` claims ``count`` values."""
    data = strip_tiff(4, 4, bytes(16))
    entry = next(10 + 12 * i for i in range(20) if struct.unpack_from("<H", data, 10 + 12 * i)[0]
                 == code)  # fmt: skip
    return patch(data, entry + 4, struct.pack("<I", count))


def pages_tiff(count: int) -> bytes:
    buffer = io.BytesIO()
    with tifffile.TiffWriter(buffer) as writer:
        for _ in range(count):
            writer.write(np.zeros((1, 1), np.uint8), photometric="minisblack", metadata=None)
    return buffer.getvalue()


def npz_bomb(shape: tuple[int, int]) -> bytes:
    """An NPZ whose one member expands to 1 GiB: an NPY header for ``shape``, then zeros."""
    head = npy_raw(f"{{'descr': '|u1', 'fortran_order': False, 'shape': {shape}, }}")
    size = 2**30
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = comp.compress(head) + comp.flush(zlib.Z_FULL_FLUSH)
    body = first + zeros_deflate(size, "raw")
    crc = crc_of_zeros_after(head, size)
    return zip_raw([("image.npy", body, 8, crc, len(head) + size, 0)])


def gif_frames(count: int) -> bytes:
    frames = [Image.fromarray(np.full((4, 4), i, np.uint8)) for i in range(count)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


def exif_bytes(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()
