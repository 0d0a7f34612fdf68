"""read_zip: image members in memory, clutter and non-images listed, hostile entries refused."""

from __future__ import annotations

import io
import stat
import zipfile

import pytest

from modelkit.errors import ImageReadError
from modelkit.images.archive import ArchiveLimits, read_zip


def make_zip(entries: dict[str, bytes], *, compression=zipfile.ZIP_DEFLATED, symlink=None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


def test_members_in_order_with_folders_and_the_rest_listed():
    data = make_zip({
        "cats/a.png": b"A", "dogs/b.tif": b"BB", "top.npy": b"C", "notes.txt": b"x",
        "inner.zip": b"PK", "__MACOSX/cats/._a.png": b"junk", "cats/.DS_Store": b"junk",
    })  # fmt: skip
    archive = read_zip(data, "set.zip")
    assert [(m.path, m.folder, m.name, m.data) for m in archive.members] == [
        ("cats/a.png", "cats", "a.png", b"A"),
        ("dogs/b.tif", "dogs", "b.tif", b"BB"),
        ("top.npy", "", "top.npy", b"C"),
    ]
    assert archive.skipped == [
        ("notes.txt", "not an image type (.txt)"),
        ("inner.zip", "a ZIP inside the ZIP (not opened)"),
    ]


@pytest.mark.parametrize(
    "name, phrase",
    [("../evil.png", "outside the archive"), ("/etc/evil.png", "absolute path"),
     ("C:/evil.png", "drive letter"), ("a/../../evil.png", "outside the archive")],
)  # fmt: skip
def test_paths_that_leave_the_archive_are_refused(name, phrase):
    with pytest.raises(ImageReadError, match=phrase) as err:
        read_zip(make_zip({"ok.png": b"1", name: b"2"}), "bad.zip")
    assert "bad.zip" in str(err.value)


def test_symlinks_are_refused():
    with pytest.raises(ImageReadError, match="symbolic link"):
        read_zip(make_zip({"ok.png": b"1"}, symlink="link.png"), "s.zip")


def test_bombs_entry_counts_and_sizes_are_refused_before_reading():
    bomb = make_zip({"zeros.npy": bytes(50 * 2**20)})  # 50 MiB of zeros packs into ~50 KB
    assert len(bomb) < 2**20
    with pytest.raises(ImageReadError, match="ZIP bomb"):
        read_zip(bomb, "bomb.zip")
    many = make_zip({f"{i}.png": b"1" for i in range(30)})
    with pytest.raises(ImageReadError, match="30 entries; at most 20"):
        read_zip(many, "many.zip", ArchiveLimits(max_entries=20))
    big = make_zip({"a.png": bytes(3000), "b.png": bytes(3000)}, compression=zipfile.ZIP_STORED)
    with pytest.raises(ImageReadError, match="unpacks to"):
        read_zip(big, "big.zip", ArchiveLimits(max_total_bytes=5000))
    with pytest.raises(ImageReadError, match="per file"):
        read_zip(big, "big.zip", ArchiveLimits(max_member_bytes=2000))


def test_a_header_that_lies_about_its_size_is_caught_while_reading():
    data = bytearray(make_zip({"a.npy": bytes(4000)}, compression=zipfile.ZIP_STORED))
    # shrink the declared size in both headers: the stored bytes are then more than declared
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.index(sig) + offset
        data[at : at + 4] = (100).to_bytes(4, "little")
    with pytest.raises(ImageReadError, match="a.npy"):
        read_zip(bytes(data), "lying.zip")


def test_not_a_zip():
    with pytest.raises(ImageReadError, match="as a ZIP"):
        read_zip(b"hello", "x.zip")
