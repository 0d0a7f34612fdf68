"""modelkit.batch: one row per file from a folder, a ZIP or a list; broken and mismatched files
are error rows; predictions are the classifier (or a taught head) on the embeddings; outputs are
resumable and written atomically; the command line does the same."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from batch_data import BAD, GOOD, make_folder, zip_folder

import modelkit
from modelkit import ConfigError, ImageReadError, embeddings, predict, read_image
from modelkit.batches.table import Output
from modelkit.runtime.model_cache import ModelCache
from modelkit.runtime.result_cache import ResultCache

ROOT = Path(__file__).resolve().parent.parent
MODEL = "efficientnet_lite0"
CACHE = ModelCache()  # one build of the model for the whole file


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("images"))


def run(inputs, **kw):
    kw = {"pretrained": True, "model_cache": CACHE, "use_result_cache": False, **kw}
    return modelkit.batch(inputs, MODEL, **kw)


def rows_by_file(table) -> dict[str, dict]:
    return {row["file"]: row for row in table.to_pylist()}


def test_a_folder_gives_a_row_per_image_and_errors_for_the_bad_ones(folder):
    result = run(folder, batch_size=4)
    rows = rows_by_file(result.table())
    assert list(rows) == sorted([*GOOD, *BAD])  # sorted names; notes.txt is not an image
    assert result.skipped == [("notes.txt", "not an image type (.txt)")]
    assert (result.total, result.computed, result.errors) == (9, 9, 3)
    for name, phrase in BAD.items():
        assert phrase in rows[name]["error"], rows[name]["error"]
        assert rows[name]["labels"] is None and rows[name]["embedding"] is None
    assert rows["cats/c1.png"]["folder"] == "cats" and rows["broken.png"]["folder"] == ""
    for name in GOOD:
        assert rows[name]["error"] is None and len(rows[name]["embedding"]) == 1280
        data = (folder / name).read_bytes()
        image = read_image(data, name)
        expected = predict(image, MODEL, pretrained=True, top_k=5, use_result_cache=False,
                           model_cache=CACHE)  # fmt: skip
        assert rows[name]["labels"] == expected.labels
        np.testing.assert_allclose(rows[name]["probabilities"], expected.probabilities,
                                   rtol=1e-4, atol=1e-6)  # fmt: skip
        alone = embeddings([image], MODEL, pretrained=True, use_result_cache=False,
                           model_cache=CACHE)  # fmt: skip
        np.testing.assert_allclose(rows[name]["embedding"], alone.vectors[0, 0], atol=1e-4)


def test_a_zip_and_a_list_give_the_same_rows_as_the_folder(folder, tmp_path):
    from_folder = run(folder, batch_size=3).table()
    from_zip = run(zip_folder(folder, tmp_path / "images.zip"), batch_size=3).table()
    assert from_zip.column("file").to_pylist() == from_folder.column("file").to_pylist()
    assert from_zip.column("error").to_pylist() == from_folder.column("error").to_pylist()
    assert from_zip.column("labels").to_pylist() == from_folder.column("labels").to_pylist()
    files = [folder / "cats/c0.png", folder / "rgba.png"]
    listed = rows_by_file(run(files).table())
    assert set(listed) == {str(f) for f in files}
    assert listed[str(files[0])]["labels"] == rows_by_file(from_folder)["cats/c0.png"]["labels"]
    assert "the image's 4 channels" in listed[str(files[1])]["error"]


def test_a_taught_head_gives_its_classes_from_the_same_embeddings(folder):
    rng = np.random.default_rng(0)
    setup = {"model": MODEL, "pretrained": True, "scaling": "auto"}
    head = modelkit.TrainedHead(classes=["left", "right", "middle"],
                                weight=rng.normal(0, 0.05, (3, 1280)), bias=np.zeros(3),
                                setup=setup)  # fmt: skip
    table = run(folder, head=head).table()
    for row in table.to_pylist():
        if row["error"] is None:
            with torch.no_grad():
                logits = head.linear(torch.tensor(row["embedding"]))
            probs = torch.softmax(logits.double(), -1)
            assert row["labels"][0] == head.classes[int(probs.argmax())]
            assert len(row["labels"]) == 3  # top-5 of 3 classes
            np.testing.assert_allclose(sorted(row["probabilities"], reverse=True),
                                       sorted(probs.tolist(), reverse=True), atol=1e-6)  # fmt: skip
    # the head's settings win; what was given beside them and not used is named, never dropped
    other = run(folder, head=head, scaling="minmax")
    assert other.table().column("labels").to_pylist() == table.column("labels").to_pylist()
    assert other.notes == ["The head was taught with scaling 'auto'; the scaling 'minmax' given "
                           "was not used."]  # fmt: skip
    renamed = modelkit.batch(folder, "resnet18", head=head, model_cache=CACHE,
                             use_result_cache=False)  # fmt: skip
    assert renamed.model == MODEL and "model 'resnet18' given was not used" in renamed.notes[0]
    with pytest.raises(ConfigError, match="must be a TrainedHead or its .safetensors file"):
        run(folder, head=object())


def test_a_taught_head_on_flipped_views_answers_as_it_does_alone(folder):
    rng = np.random.default_rng(0)
    setup = {"model": MODEL, "pretrained": True, "scaling": "auto", "views": "flips"}
    weight, bias = rng.normal(0, 0.05, (3, 1280)), np.zeros(3)
    head = modelkit.TrainedHead(classes=["a", "b", "c"], weight=weight, bias=bias, setup=setup)
    rows = rows_by_file(run(folder, head=head).table())
    for name in GOOD:
        image = read_image((folder / name).read_bytes(), name)
        alone = head.predict(image, top_k=3, use_result_cache=False, model_cache=CACHE)
        assert rows[name]["labels"] == alone.labels
        np.testing.assert_allclose(rows[name]["probabilities"], alone.probabilities, atol=1e-5)


def test_results_share_the_per_image_cache_with_embeddings(folder, tmp_path):
    cache = ResultCache(tmp_path / "results")
    first = run([folder / "cats/c0.png"], use_result_cache=True, result_cache=cache).table()
    data = (folder / "cats/c0.png").read_bytes()
    again = embeddings([read_image(data, "c0.png")], MODEL, pretrained=True, image_bytes=[data],
                       result_cache=cache, model_cache=CACHE)  # fmt: skip
    assert again.cache_hits.tolist() == [True]
    assert np.array_equal(again.vectors[0, 0], np.float32(first.column("embedding")[0].as_py()))


class Stop(Exception):
    pass


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".npz"])
def test_an_interrupted_run_leaves_a_valid_file_that_a_rerun_completes(folder, tmp_path, suffix):
    whole = tmp_path / f"whole{suffix}"
    run(folder, batch_size=2, out=whole)
    out = tmp_path / f"part{suffix}"

    def stop_after_two_batches(done, total):
        if done >= 4:
            raise Stop

    with pytest.raises(Stop):
        run(folder, batch_size=2, out=out, progress=stop_after_two_batches)
    assert not out.with_name(out.name + ".parts").exists()
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind
    assert len(Output(out, ("predictions", "embeddings")).done()) == 4  # a valid, partial file
    again = run(folder, batch_size=2, out=out)
    assert (again.already_done, again.computed) == (4, 5)
    if suffix == ".npz":
        a, b = np.load(whole), np.load(out)
        assert a.files == b.files
        for key in a.files:
            np.testing.assert_allclose(a[key], b[key]) if a[key].dtype.kind == "f" else \
                np.testing.assert_array_equal(a[key], b[key])  # fmt: skip
        assert b["embedding"].shape == (9, 1280) and np.isnan(b["embedding"][0]).all()
    else:
        assert again.table().equals(modelkit.BatchResult(MODEL, whole, 0, 0, 0, 0).table())
    assert run(folder, out=out).computed == 0  # nothing left to do


def test_a_killed_run_leaves_parts_that_the_next_run_merges(folder, tmp_path, monkeypatch):
    out = tmp_path / "out.parquet"
    monkeypatch.setattr(Output, "finish", lambda self: None)  # as if killed before merging

    def stop(done, total):
        if done >= 2:
            raise Stop

    with pytest.raises(Stop):
        run(folder, batch_size=2, out=out, progress=stop)
    assert not out.exists() and len(list((tmp_path / "out.parquet.parts").iterdir())) == 1
    monkeypatch.undo()
    again = run(folder, batch_size=2, out=out)
    assert (again.already_done, again.computed) == (2, 7)
    assert pq.read_table(out).column("file").to_pylist() == sorted([*GOOD, *BAD])


def test_outputs_that_cannot_be_written_are_refused_before_any_work(folder, tmp_path):
    cache = ModelCache()
    (tmp_path / "a_file").write_text("x")
    cases = [(tmp_path / "missing" / "out.parquet", "does not exist"),
             (tmp_path / "a_file" / "out.parquet", "does not exist"),
             (tmp_path, "is a folder"), (tmp_path / "out.xlsx", "must end with"),
             (tmp_path / "out.csv", "A CSV output holds predictions")]  # fmt: skip
    for out, phrase in cases:
        with pytest.raises(ConfigError, match=phrase):
            run(folder, out=out, model_cache=cache, what="embeddings")
    (tmp_path / "other.parquet").write_bytes(b"not parquet")
    with pytest.raises(ConfigError, match="not a readable Parquet file"):
        run(folder, out=tmp_path / "other.parquet", model_cache=cache)
    run([folder / "cats/c0.png"], out=tmp_path / "emb.parquet", what="embeddings")
    with pytest.raises(ConfigError, match="holds the columns"):
        run(folder, out=tmp_path / "emb.parquet", model_cache=cache)
    assert len(cache) == 0  # no model was built for any refused run


def test_a_zip_with_too_many_entries_is_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELKIT_MAX_ZIP_ENTRIES", "20")
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(21):
            zf.writestr(f"{i}.png", b"")
    with pytest.raises(ImageReadError, match="many.zip' has 21 entries; at most 20"):
        run(path)


@pytest.mark.slow
def test_a_zip_of_100000_entries_is_refused(tmp_path):
    path = tmp_path / "huge.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(100_000):
            zf.writestr(f"{i}.png", b"")
    with pytest.raises(ImageReadError, match="100,000 entries"):
        run(path)


def test_bad_arguments_are_named(folder):
    for kw, phrase in [({"what": "logits"}, "what=\\('logits',\\)"),
                       ({"batch_size": 0}, "batch_size=0"), ({"engine": "spark"}, "engine="),
                       ({"engine": "ray"}, "give out="), ({"top_k": 0}, "top_k=0")]:  # fmt: skip
        with pytest.raises(ConfigError, match=phrase):
            run(folder, **kw)
    with pytest.raises(ConfigError, match="neither a folder nor a file"):
        run(folder / "nothing-here")
    with pytest.raises(ConfigError, match="listed twice"):
        run([folder / "cats/c0.png", folder / "cats/c0.png"])


@pytest.mark.slow  # a child process (imports torch)
def test_the_command_line_writes_the_table_and_names_mistakes(folder, tmp_path):
    out = tmp_path / "cli.parquet"
    cmd = [sys.executable, "-m", "modelkit", "batch", str(folder), "--model", MODEL,
           "--out", str(out), "--batch-size", "4", "--no-cache", "--top-k", "3"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "9 new rows (3 with an error)" in done.stdout and "notes.txt" in done.stdout
    table = pq.read_table(out)
    assert table.column_names == ["file", "folder", "labels", "probabilities", "embedding",
                                  "error"]  # fmt: skip
    direct = run(folder, top_k=3).table()
    assert table.column("labels").to_pylist() == direct.column("labels").to_pylist()
    bad = [*cmd[:8], str(tmp_path / "missing" / "x.parquet")]
    refused = subprocess.run(bad, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert (
        refused.returncode == 2
        and "folder" in refused.stderr
        and "does not exist" in (refused.stderr)
    )
    assert "Traceback" not in refused.stderr


@pytest.mark.slow  # a child process (imports torch)
def test_modelkit_batch_is_the_function_whichever_import_came_first():
    code = ("import sys, modelkit.batches.cli; assert 'torch' not in sys.modules; "
            "import modelkit; assert modelkit.batch.__module__ == 'modelkit.batches.job'; "
            "from modelkit import batch; assert batch is modelkit.batch")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
