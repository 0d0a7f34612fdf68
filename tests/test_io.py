"""read_image: every format, dtype and layout the app accepts, written here and read back value by
value; every malformed or unsafe upload gives ImageReadError with a useful message."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image, ImageOps

from modelkit.errors import ImageReadError
from modelkit.images.read import ImageArray, ReadLimits, read_image

RNG = np.random.default_rng(0)


def npy_bytes(array: np.ndarray, **kwargs) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, **kwargs)
    return buffer.getvalue()


def tiff_bytes(array: np.ndarray, **kwargs) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **kwargs)
    return buffer.getvalue()


def pil_bytes(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def rgb(h: int = 20, w: int = 30) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


# ---- Pillow formats ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mode,channels", [("L", 1), ("RGB", 3), ("RGBA", 4)], ids=["gray", "rgb", "rgba"]
)
@pytest.mark.parametrize("fmt", ["PNG", "BMP", "WEBP"])
def test_lossless_pillow_formats_value_by_value(mode, channels, fmt):
    if fmt == "BMP" and mode == "RGBA":
        pytest.skip("BMP does not store alpha in Pillow's writer")
    shape = (12, 17) if channels == 1 else (12, 17, channels)
    pixels = RNG.integers(0, 256, shape, dtype=np.uint8)
    extra = {"lossless": True, "exact": True} if fmt == "WEBP" else {}
    if channels == 4:
        pixels[..., 3] = np.maximum(pixels[..., 3], 1)  # keep alpha in use, never fully clear
    img = read_image(pil_bytes(Image.fromarray(pixels, mode), fmt, **extra), f"a.{fmt.lower()}")
    assert img.format == fmt.lower()
    expected = pixels[None] if channels == 1 else np.moveaxis(pixels, -1, 0)
    if fmt == "WEBP" and channels == 1:
        expected = np.repeat(expected, 3, axis=0)  # WebP has no gray mode; it stores RGB
    assert img.data.shape == expected.shape and img.data.dtype == np.uint8
    np.testing.assert_array_equal(img.data, expected)
    assert img.value_range == (float(pixels.min()), float(pixels.max()))


def test_palette_png_expands_to_rgb_colours():
    pixels = rgb(10, 10)
    pal = Image.fromarray(pixels).quantize(colors=16)
    img = read_image(pil_bytes(pal, "PNG"), "p.png")
    expected = np.asarray(pal.convert("RGB"))
    np.testing.assert_array_equal(img.data, np.moveaxis(expected, -1, 0))
    assert any("Palette" in n for n in img.notes)


def test_16bit_gray_png_keeps_all_bits():
    pixels = RNG.integers(0, 65536, (9, 11), dtype=np.uint16)
    img = read_image(pil_bytes(Image.fromarray(pixels), "PNG"), "g16.png")
    assert img.data.dtype == np.uint16
    np.testing.assert_array_equal(img.data[0], pixels)


def test_16bit_rgb_png_keeps_all_bits():
    import imagecodecs

    pixels = RNG.integers(0, 65536, (9, 11, 3), dtype=np.uint16)
    img = read_image(imagecodecs.png_encode(pixels), "c16.png")
    assert img.data.dtype == np.uint16 and img.axes == "YXS"
    np.testing.assert_array_equal(img.data, np.moveaxis(pixels, -1, 0))


def test_jpeg_rgb_and_gray_decode_like_pillow():
    yy, xx = np.mgrid[0:32, 0:24]
    pixels = np.stack([yy * 7, xx * 9, yy + xx * 3], axis=-1).astype(np.uint8)  # smooth, JPEG-able
    data = pil_bytes(Image.fromarray(pixels), "JPEG", quality=95)
    img = read_image(data, "photo.jpg")
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    np.testing.assert_array_equal(img.data, np.moveaxis(expected, -1, 0))
    assert np.abs(img.data.astype(int) - np.moveaxis(pixels, -1, 0)).mean() < 3
    gray = read_image(pil_bytes(Image.fromarray(pixels[..., 0]), "JPEG"), "g.jpeg")
    assert gray.data.shape == (1, 32, 24)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_jpeg_pixels_equal_pillows_in_every_orientation(orientation, mode):
    """Grayscale and RGB JPEGs are decoded by torchvision (1x the array in memory, not 2.3x):
    exactly Pillow's pixels, turned upright as ImageOps.exif_transpose turns them."""
    import skimage.data

    exif = Image.Exif()
    exif[0x0112] = orientation
    photo = Image.fromarray(skimage.data.chelsea()[:61, :87]).convert(mode)  # odd sizes
    for options in ({"quality": 90}, {"quality": 75, "progressive": True, "subsampling": 0}):
        data = pil_bytes(photo, "JPEG", exif=exif.tobytes(), **options)
        img = read_image(data, "photo.jpg")
        upright = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
        expected = upright[None] if upright.ndim == 2 else np.moveaxis(upright, -1, 0)
        assert img.data.shape == expected.shape and img.data.dtype == np.uint8
        np.testing.assert_array_equal(img.data, expected)
        assert img.original_shape == upright.shape
        assert any("orientation" in n for n in img.notes) == (orientation > 1)


def test_cmyk_jpeg_is_converted_to_rgb():
    cmyk = Image.fromarray(rgb(16, 16)).convert("CMYK")
    data = pil_bytes(cmyk, "JPEG", quality=95)
    img = read_image(data, "print.jpg")
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert img.data.shape == (3, 16, 16)
    np.testing.assert_array_equal(img.data, np.moveaxis(expected, -1, 0))
    assert any("CMYK" in n for n in img.notes)


@pytest.mark.parametrize("orientation,transform", [(3, lambda a: a[::-1, ::-1]),
                                                   (6, lambda a: np.rot90(a, -1)),
                                                   (8, lambda a: np.rot90(a, 1))])  # fmt: skip
def test_exif_orientation_is_applied(orientation, transform):
    pixels = RNG.integers(0, 256, (6, 10), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = pil_bytes(Image.fromarray(pixels), "PNG", exif=exif.tobytes())
    img = read_image(data, "rotated.png")
    np.testing.assert_array_equal(img.data[0], transform(pixels))
    assert any("orientation" in n for n in img.notes)


# ---- TIFF ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "int16", "float32", "float64"])
@pytest.mark.parametrize("planar", [True, False], ids=["planar", "contig"])
def test_tiff_dtypes_and_planar_config(dtype, planar):
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if info:
        array = RNG.integers(info.min, info.max, (5, 8, 9), dtype=dtype, endpoint=True)
    else:
        array = RNG.normal(size=(5, 8, 9)).astype(dtype)
    if planar:
        data = tiff_bytes(array, photometric="minisblack", planarconfig="separate")
        expected_axes = "SYX"
    else:
        data = tiff_bytes(np.moveaxis(array, 0, -1), photometric="minisblack",
                          planarconfig="contig")  # fmt: skip
        expected_axes = "YXS"
    img = read_image(data, "bands.tif")
    assert img.axes == expected_axes and img.dtype == dtype
    np.testing.assert_array_equal(img.data, array)


@pytest.mark.parametrize("compression", ["lzw", "zlib", "zstd", "jpeg", "packbits"])
def test_tiff_compressions(compression):
    array = rgb(32, 48)
    data = tiff_bytes(array, photometric="rgb", compression=compression)
    img = read_image(data, "c.tif")
    if compression == "jpeg":
        expected = tifffile.imread(io.BytesIO(data))
        np.testing.assert_array_equal(img.data, np.moveaxis(expected, -1, 0))
    else:
        np.testing.assert_array_equal(img.data, np.moveaxis(array, -1, 0))


def test_tiled_bigtiff_multiband():
    array = RNG.integers(0, 4000, (13, 64, 80), dtype=np.uint16)
    data = tiff_bytes(array, bigtiff=True, tile=(32, 32), compression="zlib",
                      photometric="minisblack", planarconfig="separate")  # fmt: skip
    assert data[:4] == b"II+\x00"
    img = read_image(data, "big.tif")
    np.testing.assert_array_equal(img.data, array)


def test_multipage_stack_pages_are_channels():
    pages = RNG.integers(0, 255, (4, 10, 12), dtype=np.uint8)
    buffer = io.BytesIO()
    with tifffile.TiffWriter(buffer) as writer:
        for page in pages:
            writer.write(page, photometric="minisblack", metadata=None)
    img = read_image(buffer.getvalue(), "stack.tif")
    assert img.num_channels == 4
    np.testing.assert_array_equal(img.data, pages)


def test_ome_tiff_channels_names_and_first_timepoint():
    array = RNG.integers(0, 60000, (3, 2, 10, 12), dtype=np.uint16)  # T, C, Y, X
    data = tiff_bytes(array, ome=True,
                      metadata={"axes": "TCYX", "Channel": {"Name": ["DAPI", "GFP"]}})  # fmt: skip
    img = read_image(data, "cells.ome.tif")
    assert img.axes == "TCYX" and img.original_shape == (3, 2, 10, 12)
    assert img.band_names == ["DAPI", "GFP"]
    np.testing.assert_array_equal(img.data, array[0])
    assert any("Axis T" in n and "first" in n for n in img.notes)


def test_imagej_hyperstack_labels_and_first_slice():
    array = RNG.integers(0, 255, (2, 3, 10, 12), dtype=np.uint8)  # Z, C, Y, X
    data = tiff_bytes(array, imagej=True,
                      metadata={"axes": "ZCYX", "Labels": ["a", "b", "c"] * 2})  # fmt: skip
    img = read_image(data, "hyper.tif")
    assert img.band_names == ["a", "b", "c"]
    np.testing.assert_array_equal(img.data, array[0])
    assert any("Axis Z" in n for n in img.notes)


def test_gdal_metadata_band_names():
    array = RNG.integers(0, 10000, (3, 8, 8), dtype=np.uint16)
    gdal = ("<GDALMetadata>"
            + "".join(f'<Item name="DESCRIPTION" sample="{i}" role="description">{n}</Item>'
                      for i, n in enumerate(["B4", "B3", "B2"]))
            + "</GDALMetadata>")  # fmt: skip
    data = tiff_bytes(array, photometric="minisblack", planarconfig="separate",
                      extratags=[(42112, "s", 0, gdal, True)])  # fmt: skip
    img = read_image(data, "s2.tif")
    assert img.band_names == ["B4", "B3", "B2"]


def test_ome_tiff_cannot_reach_other_files(tmp_path, monkeypatch):
    """OME-XML that names a second file on disk must not make the reader open it."""
    secret = np.full((1, 8, 8), 200, np.uint8)
    tifffile.imwrite(tmp_path / "secret.ome.tif", secret, ome=True)
    monkeypatch.chdir(tmp_path)
    own = np.zeros((8, 8), np.uint8) + 7
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" '
        'UUID="urn:uuid:00000000-0000-0000-0000-000000000001">'
        '<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint8" '
        'SizeX="8" SizeY="8" SizeC="2" SizeZ="1" SizeT="1"><Channel ID="Channel:0:0"/>'
        '<Channel ID="Channel:0:1"/>'
        '<TiffData FirstC="0" IFD="0" PlaneCount="1"><UUID FileName="upload.ome.tif">'
        "urn:uuid:00000000-0000-0000-0000-000000000001</UUID></TiffData>"
        '<TiffData FirstC="1" IFD="0" PlaneCount="1"><UUID FileName="secret.ome.tif">'
        "urn:uuid:00000000-0000-0000-0000-000000000002</UUID></TiffData>"
        "</Pixels></Image></OME>"
    )
    data = tiff_bytes(own, description=xml, metadata=None)
    (tmp_path / "upload.ome.tif").write_bytes(data)
    assert tifffile.imread(tmp_path / "upload.ome.tif").max() == 200  # by path, it would leak
    img = read_image(data, "upload.ome.tif")
    assert img.data.max() == 7  # from bytes: only this file's own pixels


# ---- NPY / NPZ -----------------------------------------------------------------------------


@pytest.mark.parametrize("layout,shape,expected_axes", [
    ("auto", (4, 20, 30), "CYX"), ("auto", (20, 30, 4), "YXC"),
    ("CHW", (20, 30, 40), "CYX"), ("HWC", (5, 6, 7), "YXC"), ("auto", (20, 30), "YX"),
])  # fmt: skip
def test_npy_layouts(layout, shape, expected_axes):
    array = RNG.normal(size=shape).astype(np.float32)
    img = read_image(npy_bytes(array), "a.npy", layout=layout)
    assert img.axes == expected_axes
    expected = {"CYX": array, "YXC": np.moveaxis(array, -1, 0), "YX": array[None]}[expected_axes]
    np.testing.assert_array_equal(img.data, expected)
    if layout == "auto" and len(shape) == 3:
        assert any("automatically" in n for n in img.notes)


def test_npz_reads_first_array_and_names_others():
    a, b = RNG.normal(size=(3, 8, 8)), RNG.normal(size=(2, 4, 4))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, image=a, mask=b)
    img = read_image(buffer.getvalue(), "x.npz")
    np.testing.assert_array_equal(img.data, a)
    assert "mask" in img.notes[0]


def test_nan_and_inf_are_counted_and_range_is_finite():
    array = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    array[0, 0, 0], array[1, 1, 1], array[1, 2, 2] = np.nan, np.inf, -np.inf
    img = read_image(npy_bytes(array), "n.npy")
    assert img.nan_count == 3
    finite = array[np.isfinite(array)]
    assert img.value_range == (float(finite.min()), float(finite.max()))
    assert any("NaN" in n for n in img.notes)


def test_bool_npy_reads_as_uint8():
    img = read_image(npy_bytes(np.eye(5, dtype=bool)), "m.npy")
    assert img.dtype == "uint8" and img.data.sum() == 5


# ---- malformed and unsafe uploads ----------------------------------------------------------


def huge_npy_header(shape=(100000, 100000, 3), dtype="<f8") -> bytes:
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return b"\x93NUMPY\x01\x00" + buffer.getvalue()[8:]


MALFORMED = {
    "empty": (b"", "x.png", "empty"),
    "unknown bytes": (b"hello world, not an image", "x.png", "not a PNG"),
    "truncated png": (pil_bytes(Image.fromarray(rgb()), "PNG")[:60], "x.png", "damaged"),
    "truncated jpeg": (pil_bytes(Image.fromarray(rgb()), "JPEG")[:100], "x.jpg", "damaged"),
    "truncated tiff": (tiff_bytes(rgb(64, 64))[:200], "x.tif", "damaged"),
    "truncated npy": (npy_bytes(np.ones((3, 50, 50)))[:300], "x.npy", "damaged"),
    "object npy": (npy_bytes(np.array([{"a": 1}], dtype=object), allow_pickle=True), "x.npy",
                   "Python objects"),
    "complex npy": (npy_bytes(np.ones((4, 4), np.complex64)), "x.npy", "not a number type"),
    "string npy": (npy_bytes(np.array([["a"]])), "x.npy", "not a number type"),
    "structured npy": (npy_bytes(np.zeros((3, 3), dtype=[("a", "i4"), ("b", "f4")])), "x.npy",
                       "not a number type"),
    "4-d npy": (npy_bytes(np.zeros((2, 2, 4, 4))), "x.npy", "4 dimensions"),
    "1-d npy": (npy_bytes(np.zeros(5)), "x.npy", "1 dimensions"),
    "zero-sized npy": (npy_bytes(np.zeros((0, 5))), "x.npy", "empty"),
    "bomb npy header": (huge_npy_header(), "bomb.npy", "pixels per band"),
    "zip without npy": (None, "x.npz", "no .npy"),
    "broken zip": (b"PK\x03\x04" + b"\x00" * 40, "x.npz", "damaged"),
}  # fmt: skip


def _zip_without_npy() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "hi")
    return buffer.getvalue()


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_uploads_raise_image_read_error(case):
    data, name, words = MALFORMED[case]
    if data is None:
        data = _zip_without_npy()
    with pytest.raises(ImageReadError) as info:
        read_image(data, name)
    message = str(info.value)
    assert name in message and words in message


def test_limits_are_checked_before_decoding():
    pixels = RNG.integers(0, 255, (100, 100), dtype=np.uint8)
    small = ReadLimits(max_pixels=5000)
    for data, name in [(pil_bytes(Image.fromarray(pixels), "PNG"), "a.png"),
                       (tiff_bytes(pixels), "a.tif"), (npy_bytes(pixels), "a.npy")]:  # fmt: skip
        with pytest.raises(ImageReadError, match="pixels per band"):
            read_image(data, name, limits=small)
    with pytest.raises(ImageReadError, match="channels"):
        read_image(
            npy_bytes(np.zeros((9, 20, 20), np.uint8)), "c.npy", limits=ReadLimits(max_channels=8)
        )
    with pytest.raises(ImageReadError, match="MiB"):
        read_image(npy_bytes(np.zeros((3, 512, 512))), "b.npy", limits=ReadLimits(max_bytes=2**20))


def test_tiff_bomb_header_is_refused_without_decoding():
    # a 1x1 image whose header is rewritten to claim 60000 x 60000 pixels
    data = bytearray(tiff_bytes(np.zeros((1, 1), np.uint8), metadata=None))
    tiff = tifffile.TiffFile(io.BytesIO(bytes(data)))
    for tag in ("ImageWidth", "ImageLength"):
        t = tiff.pages.first.tags[tag]
        fmt = "<H" if t.dtype == 3 else "<I"
        import struct

        data[t.valueoffset : t.valueoffset + struct.calcsize(fmt)] = struct.pack(fmt, 60000)
    with pytest.raises(ImageReadError):
        read_image(bytes(data), "bomb.tif")


def test_wrong_extension_is_read_by_content_and_noted():
    img = read_image(pil_bytes(Image.fromarray(rgb()), "PNG"), "really_a_png.jpg")
    assert img.format == "png" and any("contents are PNG" in n for n in img.notes)


def test_unknown_layout_is_refused():
    with pytest.raises(ImageReadError, match="layout"):
        read_image(npy_bytes(np.zeros((3, 4, 4))), "a.npy", layout="WHC")


# ---- property tests ------------------------------------------------------------------------

dtypes = st.sampled_from([np.uint8, np.uint16, np.int16, np.float32, np.float64])
shapes_3d = st.tuples(st.integers(1, 6), st.integers(8, 20), st.integers(8, 20))


@settings(max_examples=25, deadline=None)
@given(array=hnp.arrays(dtypes, shapes_3d, elements={"allow_nan": False, "allow_infinity": False,
                                                     "allow_subnormal": False}))  # fmt: skip
def test_npy_and_tiff_round_trip(array):
    planar = {"planarconfig": "separate"} if array.shape[0] > 1 else {}
    tiff = tiff_bytes(array, photometric="minisblack", **planar)
    for data, name in [(npy_bytes(array), "a.npy"), (tiff, "a.tif")]:
        img = read_image(data, name, layout="CHW")
        assert isinstance(img, ImageArray) and img.data.dtype == array.dtype
        np.testing.assert_array_equal(img.data, array)


@settings(max_examples=30, deadline=None)
@given(c=st.integers(1, 16), h=st.integers(17, 40), w=st.integers(17, 40), hwc=st.booleans())
def test_auto_layout_picks_the_smaller_axis_as_channels(c, h, w, hwc):
    array = np.arange(c * h * w, dtype=np.uint16).reshape(c, h, w)
    stored = np.moveaxis(array, 0, -1) if hwc else array
    img = read_image(npy_bytes(stored), "a.npy")
    assert img.data.shape == (c, h, w)
    np.testing.assert_array_equal(img.data, array)


# ---- the shipped sample data ---------------------------------------------------------------

ASSETS = __import__("pathlib").Path(__file__).resolve().parent.parent / "assets"
S2_ORDER = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]


def test_sample_assets_read_with_their_metadata():
    s2 = read_image((ASSETS / "sentinel2_13band.tif").read_bytes(), "sentinel2_13band.tif")
    assert s2.data.shape == (13, 256, 256) and s2.dtype == "uint16"
    assert s2.band_names == S2_ORDER
    nir = read_image((ASSETS / "sentinel2_b08_nir_16bit.png").read_bytes(), "nir.png")
    assert nir.data.shape == (1, 256, 256) and nir.dtype == "uint16"
    np.testing.assert_array_equal(nir.data[0], s2.data[S2_ORDER.index("B8")])
    landsat = read_image((ASSETS / "landsat8_7band.npy").read_bytes(), "landsat8_7band.npy")
    assert landsat.data.shape == (7, 128, 128) and landsat.axes == "CYX"


def test_big_endian_npy_becomes_native_order():
    array = np.arange(3 * 4 * 5, dtype=">u2").reshape(3, 4, 5)
    img = read_image(npy_bytes(array), "be.npy")
    assert img.data.dtype.isnative and img.dtype == "uint16"
    np.testing.assert_array_equal(img.data, array)


def test_band_names_from_tifffile_json_description():
    array = RNG.integers(0, 255, (4, 6, 6), dtype=np.uint8)
    data = tiff_bytes(array, metadata={"band_names": ["nir", "red", "green", "blue"]})
    img = read_image(data, "named.tif")
    assert img.band_names == ["nir", "red", "green", "blue"]
    np.testing.assert_array_equal(img.data, array)


SEEDS = {
    "a.png": pil_bytes(Image.fromarray(rgb(16, 16)), "PNG"),
    "a.jpg": pil_bytes(Image.fromarray(rgb(16, 16)), "JPEG"),
    "a.tif": tiff_bytes(RNG.integers(0, 999, (3, 16, 16), dtype=np.uint16), compression="zlib"),
    "a.npy": npy_bytes(RNG.normal(size=(3, 16, 16))),
}


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(SEEDS)), data=st.data())
def test_corrupted_bytes_give_an_image_or_image_read_error(name, data):
    raw = bytearray(SEEDS[name])
    for _ in range(data.draw(st.integers(1, 8))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(raw)))
    try:
        img = read_image(bytes(raw[:cut]), name)
    except ImageReadError as error:
        assert name in str(error)
    else:
        assert img.data.ndim == 3 and img.data.size > 0


def test_animated_gif_reads_first_frame_as_rgb():
    frames = [Image.fromarray(np.full((8, 10, 3), v, np.uint8)).quantize(colors=4)
              for v in (40, 200)]  # fmt: skip
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    img = read_image(buffer.getvalue(), "anim.gif")
    assert img.format == "gif" and img.data.shape == (3, 8, 10)
    expected = np.asarray(frames[0].convert("RGB"))
    np.testing.assert_array_equal(img.data, np.moveaxis(expected, -1, 0))
    assert any("2 frames" in n for n in img.notes)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "I", "I;16", "F", "LA"])
def test_pillow_pixels_in_strips_equal_asarray(mode):
    from modelkit.images.read import pillow_pixels

    values = np.random.default_rng(1).integers(0, 255, (37, 23, 4), dtype=np.uint8)
    img = Image.fromarray(values, "RGBA").convert(mode)
    for strip in (1, 100, 1 << 20):  # a row per strip (or less), a few rows, all at once
        out = pillow_pixels(img, strip_bytes=strip)
        np.testing.assert_array_equal(out, np.asarray(img))
        assert out.dtype == np.asarray(img).dtype and out.flags.writeable
