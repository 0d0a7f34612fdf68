"""Teach's examples: ZIPs with one folder per class, uploads under class names, and every bad
input refused (or warned) by name before any model runs; the tab's state and figures."""

from __future__ import annotations

import io
import re
import stat
import zipfile

import numpy as np
import pytest
from teach_data import make_zip, png, texture_zip

from modelkit.app import teach_figures, teach_state
from modelkit.errors import ConfigError, ImageReadError, ModelkitError
from modelkit.teach.examples import examples_from_files, examples_from_zip
from modelkit.teach.head import TrainedHead

RGB = png(np.zeros((8, 8, 3), np.uint8))
RGB2 = png(np.full((8, 8, 3), 9, np.uint8))
GRAY = png(np.zeros((8, 8), np.uint8))


def test_a_zip_with_a_shared_root_folder_gives_its_subfolders_as_classes():
    examples = examples_from_zip(texture_zip(per_class=2, root="my set/"), "set.zip")
    assert examples.labels == ["brick"] * 2 + ["grass"] * 2 + ["gravel"] * 2
    assert examples.names[0] == "my set/brick/brick_0.png" and examples.warnings == []
    assert examples.images[0].num_channels == 1


def test_non_images_are_listed_and_left_out():
    data = make_zip({"a/1.png": RGB, "a/2.png": RGB2, "b/1.png": RGB2, "b/2.png": RGB,
                     "b/readme.txt": b"hi"})  # fmt: skip
    examples = examples_from_zip(data, "set.zip")
    assert len(examples.images) == 4
    assert examples.warnings[0] == "Files left out of 'set.zip': b/readme.txt (not an image type " \
        "(.txt))."  # fmt: skip
    # the same file in two classes: warned, both named
    assert any("'a/1.png' in 'a', 'b/2.png' in 'b'" in w for w in examples.warnings)


def _symlink_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a/1.png", RGB)
        info = zipfile.ZipInfo("a/link.png")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


@pytest.mark.parametrize(
    "entries, phrase",
    [
        ({"a/1.png": RGB, "a/2.png": RGB, "b/inner.zip": b"PK"}, "holds other ZIPs (b/inner.zip)"),
        ({"a/1.png": RGB, "a/2.png": RGB, "loose.png": RGB}, "loose.png is not in a class folder"),
        ({"a/1.png": RGB, "a/2.png": RGB, "../b/1.png": RGB}, "points outside the archive"),
        ({"a/1.png": RGB, "/b/1.png": RGB}, "absolute path"),
        ({"a/1.png": RGB, "a/2.png": RGB}, "Only one class ('a')"),
        ({"a/1.png": RGB, "a/2.png": RGB, "b/1.png": RGB}, "'b' has one example only"),
        ({"a/1.png": RGB, "a/2.png": RGB, "b/1.png": RGB, "b/2.png": GRAY},
         "most have 3, but 'b/2.png' (b, 1) differ"),
        ({"a/1.png": RGB, "a/2.png": b"not a png", "b/1.png": RGB}, "a/2.png"),
        ({"notes.txt": b"x"}, "holds no images"),
        (None, "symbolic link"),
    ],
)  # fmt: skip
def test_bad_zips_are_refused_by_name(entries, phrase):
    data = _symlink_zip() if entries is None else make_zip(entries)
    with pytest.raises(ModelkitError, match=re.escape(phrase)):
        examples_from_zip(data, "set.zip")


def test_too_many_examples_are_refused_before_decoding(monkeypatch):
    monkeypatch.setenv("MODELKIT_MAX_TEACH_IMAGES", "3")
    with pytest.raises(ConfigError, match="4 examples were given; at most 3"):
        examples_from_zip(make_zip({f"{c}/{i}.png": b"x" for c in "ab" for i in "12"}), "s.zip")


def test_a_zip_bomb_is_refused():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/big.npy", b"\0" * (8 * 2**20))
    with pytest.raises(ImageReadError, match="ZIP bomb"):
        examples_from_zip(buf.getvalue(), "bomb.zip")


def test_tab_state_adds_renames_and_removes_classes(tmp_path):
    zip_path = tmp_path / "set.zip"
    zip_path.write_bytes(make_zip({"a/1.png": RGB, "a/2.png": RGB2}))
    items, _ = teach_state.from_zip(str(zip_path))
    (tmp_path / "x.png").write_bytes(RGB2)
    (tmp_path / "y.png").write_bytes(RGB)
    items = teach_state.add(items, " b ", [str(tmp_path / "x.png"), str(tmp_path / "y.png")])
    assert teach_state.counts(items) == {"a": 2, "b": 2}
    items = teach_state.rename(items, "b", "cats")
    assert teach_state.counts(items) == {"a": 2, "cats": 2}
    examples = teach_state.load(items)
    assert examples.labels == ["a", "a", "cats", "cats"] and examples.names[2] == "x.png"
    thumbs = teach_state.thumbnails(items, per_class=1)
    assert [c for _, c in thumbs] == ["a (2)", "cats (2)"] and thumbs[0][0].shape == (8, 8, 3)
    assert teach_state.counts(teach_state.remove(items, "a")) == {"cats": 2}
    with pytest.raises(ConfigError, match="class name"):
        teach_state.add(items, "  ", [str(tmp_path / "x.png")])
    with pytest.raises(ConfigError, match="No examples yet"):
        teach_state.load([])


def test_uploaded_files_with_one_class_only_are_refused():
    with pytest.raises(ConfigError, match=re.escape("Only one class ('x')")):
        examples_from_files([("x", "1.png", RGB), ("x", "2.png", RGB2)])


def test_figures_show_counts_shares_and_chance():
    head = TrainedHead(
        classes=["a", "b"], weight=np.zeros((2, 4)), bias=np.zeros(2),
        setup={"model": "m", "views": "none"}, cv_accuracy=0.75, balanced_accuracy=0.7,
        confusion=np.array([[5, 1], [2, 4]]), chance=0.5, p_value=0.07,
        fold_accuracies=[0.5, 1.0], fit={"C": 0.01, "folds": 2},
        per_class={"a": {"recall": 5 / 6, "precision": 5 / 7, "count": 6},
                   "b": {"recall": 4 / 6, "precision": 0.8, "count": 6}},
        warnings=["The accuracy (75%) is within noise of chance"],
    )  # fmt: skip
    fig = teach_figures.confusion_figure(head.confusion, head.classes)
    counts, shares = fig.data
    assert counts.z.tolist() == [[5, 1], [2, 4]]
    np.testing.assert_allclose(shares.z, [[5 / 6, 1 / 6], [1 / 3, 2 / 3]])
    text = teach_figures.summary(head)
    assert "accuracy 75.0% · chance 50.0%" in text and "within noise of chance" in text
    assert teach_figures.per_class_rows(head)[0] == ["a", 6, "83%", "71%"]
