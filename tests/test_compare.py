"""Compare: setups parsed from 'name key=value', side-by-side predictions that equal single runs,
agreement and shared labels computed from them, feature maps at the strides all models share;
the Batch tab's table, map and downloads from a batch's rows; /compare in the running app."""

from __future__ import annotations

import io

import numpy as np
import pyarrow.parquet as pq
import pytest
from batch_data import make_folder, zip_folder

from modelkit import ConfigError, predict
from modelkit.app import batch_figures, compare
from modelkit.app.runs import FormRun
from modelkit.batches.project import project
from modelkit.images.limits import ImageArray
from modelkit.runtime.settings import RunSettings

BASE = FormRun(RunSettings("efficientnet_lite0", pretrained=True), top_k=5)


def image() -> ImageArray:
    data = np.random.default_rng(3).integers(0, 255, (3, 48, 56), dtype=np.uint8)
    return ImageArray(data, "x.png", "png", data.shape, "CHW", "uint8", (0.0, 255.0))


def test_entries_become_setups_over_the_form():
    a, b, c = compare.parse_entries(
        ["efficientnet_lite0", "efficientnet_lite0 pretrained=no", "resnet18 in_chans=4"], BASE
    )
    a, b, c = a.settings, b.settings, c.settings
    assert (a.name, a.pretrained, b.pretrained, c.model, c.in_chans) == (
        "efficientnet_lite0", True, False, "resnet18", 4)  # fmt: skip
    assert compare.title(FormRun(b), BASE) == "efficientnet_lite0 (random weights)"
    assert compare.title(FormRun(c), BASE) == "resnet18 (in_chans=4)"
    assert len(compare.parse_entries("resnet18; mobilenet_v3_small\nvgg11", BASE)) == 3
    bad = [(["resnet18"], "1 was given"), (["a", "b", "c", "d", "e"], "5 were"),
           (["resnet18", "vgg11 size=3"], "'size=3'"),
           (["resnet18", "vgg11 pretrained=maybe"], "pretrained='maybe'")]  # fmt: skip
    for entries, phrase in bad:
        with pytest.raises(ConfigError, match=phrase):
            compare.parse_entries(entries, BASE)


def test_side_by_side_equals_single_runs_and_agreement_follows():
    setups = compare.parse_entries(["efficientnet_lite0", "efficientnet_lite0",
                                    "resnet18 pretrained=no"], BASE)  # fmt: skip
    summary, maps = compare.compare(setups, image())
    first, twin, other = summary["models"]
    single = predict(image(), "efficientnet_lite0", pretrained=True, use_result_cache=False)
    assert [r["label"] for r in first["predictions"]] == single.labels
    assert twin["title"] == "efficientnet_lite0 #2" and first["params"] == 4652008
    assert other["params"] == 11689512 and other["head_is_random"]
    top1 = [m["predictions"][0]["label"] for m in summary["models"]]
    agreement = summary["agreement"]
    assert agreement["top1_pairs_agreeing"] == f"{1 + (top1[2] == top1[0]) * 2}/3"
    assert agreement["all_top1_agree"] == (len(set(top1)) == 1)
    assert set(summary["shared_labels"]) >= {r["label"] for r in first["predictions"]}
    # both families have levels at strides 2..32: the 3 coarsest are compared
    assert summary["strides"] == [8, 16, 32]
    for m, drawn in zip(summary["models"], maps, strict=True):
        for stride in (8, 16, 32):
            shape = m["strides"][str(stride)]["shape"]
            assert drawn["maps"][stride].shape == tuple(shape[-2:])
            assert shape[-1] == -(-224 // stride)  # the 224 input at that stride
    fig = batch_figures.stride_maps(maps, summary["strides"])
    assert len(fig.data) == 9
    bars = batch_figures.topk_side_by_side(
        [{"title": m["title"], "labels": [r["label"] for r in m["predictions"]],
          "probabilities": [r["probability"] for r in m["predictions"]]}
         for m in summary["models"]], set(summary["shared_labels"]))  # fmt: skip
    assert bars.data[0].marker.color[-1] == batch_figures.SHARED  # lite0's best is shared


def test_the_embedding_map_separates_what_differs():
    rng = np.random.default_rng(0)
    vectors = np.concatenate([rng.normal(0, 1, (10, 50)), rng.normal(8, 1, (10, 50))])
    coords, explained = project(vectors)
    assert coords.shape == (20, 2) and explained[0] > 0.8
    assert (np.sign(coords[:10, 0]) != np.sign(coords[10:, 0].mean())).all()
    assert project(vectors[:1])[0].tolist() == [[0.0, 0.0]]
    files = [f"{'a' if i < 10 else 'b'}/{i}.png" for i in range(20)]
    fig = batch_figures.embedding_map(coords, files, [f[0] for f in files], colour_by="folder")
    assert [t.name for t in fig.data] == ["a", "b"] and list(fig.data[1].text) == files[10:]


def test_the_batch_tab_rows_map_and_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    from modelkit.app import batch_page
    from modelkit.batches import table as tables
    from modelkit.batches.job import batch

    archive = zip_folder(make_folder(tmp_path / "images"), tmp_path / "images.zip")
    rows = batch(archive, "efficientnet_lite0", pretrained=True, use_result_cache=False).rows
    shown = batch_page._rows(rows)
    assert [r[0] for r in shown] == rows.column("file").to_pylist() and len(shown) == 9
    assert sum(bool(r[4]) for r in shown) == 3
    state = batch_page._map_state(rows)
    assert len(state["files"]) == 6 and set(state["folders"]) == {"cats", "dogs"}
    assert len(batch_page._figure(state, "folder").data) == 2
    text = tables.csv_text(rows)
    assert text.splitlines()[0] == "file,folder,labels,probabilities,error"
    back = pq.read_table(io.BytesIO(tables.parquet_bytes(rows)))
    assert back.equals(rows)
