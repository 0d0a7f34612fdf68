"""NPY and NPZ reading for ``images.read``: headers and declared sizes checked before loading.

2-D arrays are (H, W); 3-D arrays are (C, H, W) or (H, W, C) by ``layout``, where ``auto`` takes
the smaller of the first and last axes as channels and says so in the notes. Arrays with 4 or more
dimensions are refused with a message (save one image, e.g. ``array[0]``). ``np.load`` always runs
with ``allow_pickle=False``, and only after the file was found to hold all the bytes its header
declares. For an NPZ the first ``.npy`` member is read, after every member's header and declared
size were checked, and never more of it than its header declares (a zip bomb stays unopened).
"""

from __future__ import annotations

import io
import zipfile

import numpy as np

from modelkit.images.limits import ReadLimits, check_dtype, check_size, fail


def npy_header(stream: io.BufferedIOBase | io.BytesIO, filename: str) -> tuple[tuple, np.dtype]:
    """Shape and dtype from an NPY header, without reading the array.

    numpy refuses headers over 10,000 bytes and anything but a literal dict; object dtypes pass
    here and are refused by ``check_dtype``."""
    try:
        version = np.lib.format.read_magic(stream)
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise ValueError(f"unknown NPY format version {version[0]}.{version[1]}")
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
    except (ValueError, TypeError, SyntaxError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise fail(
            filename,
            f"its NPY header is damaged or not a plain numpy header ({reason})",
            "Save the array again with numpy.save.",
        ) from exc
    return tuple(int(v) for v in shape), np.dtype(dtype)


def to_chw(
    shape: tuple[int, ...], layout: str, filename: str
) -> tuple[tuple[int, int, int], str, list[str]]:
    """How a 2-D or 3-D array maps to (C, H, W): the target shape, source axes, and a note."""
    if len(shape) == 2:
        return (1, shape[0], shape[1]), "YX", []
    if len(shape) != 3:
        raise fail(
            filename,
            f"the array has {len(shape)} dimensions {shape}; 2-D (H, W) or 3-D "
            "(C, H, W) / (H, W, C) arrays are accepted",
            "Save a single image, e.g. array[0] for the first of a stack.",
        )
    if layout == "auto":
        layout = "CHW" if shape[0] <= shape[2] else "HWC"
        channels = shape[0] if layout == "CHW" else shape[2]
        note = (
            f"Layout chosen automatically: {layout} ({channels} channels, the smaller of the "
            "first and last axes); set layout to override."
        )
        notes = [note]
    else:
        notes = []
    if layout == "CHW":
        return (shape[0], shape[1], shape[2]), "CYX", notes
    return (shape[2], shape[0], shape[1]), "YXC", notes


def load_npy_checked(raw: bytes, filename: str, layout: str, limits: ReadLimits):
    stream = io.BytesIO(raw)
    shape, dtype = npy_header(stream, filename)
    check_dtype(dtype, filename)
    chw, axes, notes = to_chw(shape, layout, filename)
    check_size(chw, dtype.itemsize, filename, limits)
    declared = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    held = len(raw) - stream.tell()
    if held < declared:  # refuse before np.load allocates what the header claims
        raise fail(
            filename,
            f"the NPY data is damaged or incomplete: its header declares {declared:,} bytes of "
            f"values but the file holds {max(held, 0):,}",
            "Check that the upload finished, or save the array again with numpy.save.",
        )
    stream.seek(0)
    array = np.load(stream, allow_pickle=False)
    if array.ndim == 2:
        array = array[None]
    elif axes == "YXC":
        array = np.moveaxis(array, -1, 0)
    return array, shape, axes, notes


def read_npy(data: bytes, filename: str, layout: str, limits: ReadLimits):
    return load_npy_checked(data, filename, layout, limits)


def read_npz(data: bytes, filename: str, layout: str, limits: ReadLimits):
    """The first array in an NPZ; every member's header and declared size are checked first."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = [m for m in archive.infolist() if m.filename.endswith(".npy")]
        if not members:
            raise fail(
                filename,
                "the archive holds no .npy arrays",
                "Save arrays with numpy.savez('file.npz', image=array).",
            )
        for member in members:
            if member.file_size > limits.max_bytes:
                raise fail(
                    filename,
                    f"member '{member.filename}' would take {member.file_size / 2**20:,.0f} MiB",
                    "Save a smaller array.",
                )
            with archive.open(member) as stream:
                head = io.BytesIO(stream.read(65536 + 16))
            shape, dtype = npy_header(head, f"{filename}:{member.filename}")
            if member is members[0]:
                check_dtype(dtype, f"{filename}:{member.filename}")
                first_size = head.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                chw, _, _ = to_chw(shape, layout, f"{filename}:{member.filename}")
                check_size(chw, dtype.itemsize, f"{filename}:{member.filename}", limits)
        first = members[0]
        with archive.open(first) as stream:  # never more than the header declares: zip bombs
            raw = stream.read(first_size)
    member_name = f"{filename}:{first.filename}"
    array, shape, axes, notes = load_npy_checked(raw, member_name, layout, limits)
    name = first.filename[:-4]
    if len(members) > 1:
        others = ", ".join(m.filename[:-4] for m in members[1:])
        notes.insert(
            0, f"The archive holds {len(members)} arrays; read '{name}' (others: {others})."
        )
    else:
        notes.insert(0, f"Read array '{name}' from the archive.")
    return array, shape, axes, notes
