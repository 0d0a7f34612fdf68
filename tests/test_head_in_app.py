"""The taught head is one object on the page: Teach fills it, Batch and Explain read it. Batch
predicts the head's classes on the gray examples Teach accepted, though the form still holds the
settings of the 3-channel photo (the head's settings win)."""

from __future__ import annotations

import numpy as np
from teach_data import texture_zip

import app  # noqa: F401 - builds the page (its status line) as the server does
from modelkit import TrainedHead
from modelkit.app import batch_page, guard, teach_page
from modelkit.app.runs import FORM_FIELDS


def _form(**values) -> list:
    photo = {"model": "efficientnet_lite0", "pretrained": True, "in_chans": 3, "top_k": 3,
             "scaling": "auto", "device": "cpu", "precision": "fp32"}  # fmt: skip
    return [{**photo, **values}.get(name) for name in FORM_FIELDS]


def test_batch_uses_the_head_teach_made_on_gray_examples(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELKIT_CACHE_DIR", str(tmp_path / "cache"))
    archive = tmp_path / "textures.zip"
    archive.write_bytes(texture_zip(per_class=4))
    view = teach_page.on_zip(str(archive))
    items = view[1]
    assert len(items) == 12
    taught = teach_page.on_train(items, "none", *_form())
    head = taught[7]
    assert isinstance(head, TrainedHead) and head.settings.in_chans == 1  # gray examples
    assert head.classes == ["brick", "grass", "gravel"]

    out = batch_page.on_batch(str(archive), "taught", head, *_form())
    assert isinstance(out, tuple), out.get(guard.status())  # no error on the status line
    note, rows = out[1], out[2]
    assert note.startswith("Labelled **12 of 12 images** with the taught classes (brick, grass")
    assert len(rows) == 12 and all(not row[4] for row in rows)  # no error rows
    right = np.mean([row[2] == row[0].split("/")[1] for row in rows])  # folder = its class
    assert right >= 0.75  # the examples it was taught on: the head knows them
    # without a head there is nothing taught to use, and the page says so in words
    refused = batch_page.on_batch(str(archive), "taught", None, *_form())
    assert "No taught head yet" in refused[guard.status()]
