"""Weights from the Hub, for real: hf_hub_download against a loopback Hub (tests/fake_hub.py)
serving a timm checkpoint; the cache, offline, faults, hashes and the progress it reports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import timm
import torch
from fake_hub import FakeHub, state_dict_bytes, torch_bytes

from modelkit import create_model
from modelkit.errors import WeightsLoadError, WeightsUnavailableError
from modelkit.models import sensors
from modelkit.models.hub import Download, download_listener
from modelkit.models.timm_source import repos_on_disk

REPO = "timm/resnet18.a1_in1k"
FILE = "model.safetensors"


@pytest.fixture(scope="module")
def served():
    """resnet18's timm state dict (seeded, not the published numbers) and its file's bytes."""
    torch.manual_seed(7)
    sd = timm.create_model("resnet18").state_dict()
    return sd, state_dict_bytes(sd)


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """The loopback Hub, with huggingface_hub pointed at it and the cache in tmp_path."""
    from huggingface_hub import constants

    server = FakeHub().start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)  # modelkit reads it at each download
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("MODELKIT_OFFLINE")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # whatever the caller's environment says
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # read at import; another test's
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)  # no agent-list fetch
    yield server
    server.stop()


def cache_files(tmp_path) -> list[str]:
    """Every file in the Hub cache except its locks and markers (what a later run could trust)."""
    root = tmp_path / "hub"
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if (p.is_file() or p.is_symlink()) and ".locks" not in p.parts and p.name != "CACHEDIR.TAG"
        and "refs" not in p.parts and ".no_exist" not in p.parts
    )  # fmt: skip


def test_download_into_the_cache_then_no_more_requests(hub, served, tmp_path, monkeypatch):
    sd, data = served
    hub.add(REPO, FILE, data)
    events: list[Download] = []
    with download_listener(events.append):
        model = create_model(REPO, pretrained=True)
    assert torch.equal(model.fc.weight, sd["fc.weight"])
    assert torch.equal(model.layer3[1].conv2.weight, sd["layer3.1.conv2.weight"])
    assert f"the Hugging Face Hub ({REPO}, {FILE})" in model.adaptations[0]
    # one look (no retries) + hf_hub_download's own HEAD, then one plain GET (not Xet)
    assert hub.count("HEAD", "/resolve/") == 2 and hub.count("GET", "/cdn/") == 1
    # into the Hub cache modelkit's hub_cache() names, as huggingface_hub lays it out
    commit = hub.repos[REPO].commit
    snap = tmp_path / "hub" / "models--timm--resnet18.a1_in1k" / "snapshots" / commit / FILE
    assert snap.is_file() and snap.read_bytes() == data
    assert REPO in repos_on_disk()
    # the progress it reported: from 0 to every byte, never backwards
    assert events[0].done == 0 and events[-1].done == len(data) == events[-1].total
    assert [e.done for e in events] == sorted(e.done for e in events) and len(events) >= 3
    mb = len(data) / 1e6
    assert events[1].text == (f"Downloading {FILE} of {REPO}: {events[1].done / 1e6:,.1f} of "
                              f"{mb:,.1f} MB")  # fmt: skip
    assert 0 < events[1].fraction < 1 and events[-1].fraction == 1.0
    assert events[-1].text == f"Downloaded {FILE} of {REPO} ({len(data) / 1e6:,.1f} MB)"
    # again: from the cache, the server is not asked
    before = list(hub.requests)
    again = create_model(REPO, pretrained=True)
    assert torch.equal(again.fc.weight, sd["fc.weight"]) and hub.requests == before
    # offline with the file cached works, and asks nothing either
    monkeypatch.setenv("MODELKIT_OFFLINE", "1")
    offline = create_model(REPO, pretrained=True)
    assert torch.equal(offline.conv1.weight, sd["conv1.weight"]) and hub.requests == before


def test_offline_without_the_file_fails_at_once(hub, served, tmp_path, monkeypatch):
    hub.add(REPO, FILE, served[1])
    monkeypatch.setenv("MODELKIT_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError) as err:
        create_model(REPO, pretrained=True)
    text = str(err.value)
    assert "MODELKIT_OFFLINE=1" in text and FILE in text and str(tmp_path / "hub") in text
    assert f"{hub.url}/{REPO}" in text and "checkpoint_path" in text
    assert hub.requests == []  # no network touched


def test_hub_offline_alone_also_fails_at_once(hub, served, monkeypatch):
    from huggingface_hub import constants

    hub.add(REPO, FILE, served[1])
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(WeightsUnavailableError, match="downloads are off \\(HF_HUB_OFFLINE=1\\)"):
        create_model(REPO, pretrained=True)
    assert hub.requests == []


def test_a_non_hub_mirror_without_redirects(hub, served):
    hub.cdn = False  # a mirror that serves the file on /resolve/ itself
    hub.add(REPO, FILE, served[1])
    model = create_model(REPO, pretrained=True)
    assert torch.equal(model.fc.bias, served[0]["fc.bias"])
    assert hub.count("GET", "/resolve/") == 1 and hub.count("GET", "/cdn/") == 0


def test_pytorch_model_bin_when_there_is_no_safetensors(hub, served, tmp_path):
    sd = served[0]
    hub.add(REPO, "pytorch_model.bin", torch_bytes(sd))
    model = create_model(REPO, pretrained=True)
    assert torch.equal(model.fc.weight, sd["fc.weight"])
    assert "pytorch_model.bin" in model.adaptations[0]
    assert cache_files(tmp_path)[-1].endswith("pytorch_model.bin")


def test_a_repo_that_is_not_there(hub):
    with pytest.raises(WeightsUnavailableError, match="is not on the Hub, or it is private"):
        create_model(REPO, pretrained=True)
    assert hub.count("HEAD") == 1  # one answer is enough: no retries


FAULTS = {
    "500": (WeightsUnavailableError, "the Hub answered HTTP 500"),
    "500-get": (WeightsUnavailableError, "the server answered HTTP 500. Nothing was kept"),
    "truncate": (WeightsUnavailableError, "peer closed connection"),
    "short": (WeightsUnavailableError, "Consistency check failed"),
    "corrupt": (WeightsLoadError, "is corrupt or not the published file, and was deleted"),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_failed_download_leaves_nothing_to_trust(fault, hub, served, tmp_path):
    sd, data = served
    hub.add(REPO, FILE, data)
    hub.fault(REPO, FILE, fault)
    kind, words = FAULTS[fault]
    with pytest.raises(kind, match=words) as err:
        create_model(REPO, pretrained=True)
    assert "Traceback" not in str(err.value) and err.value.__cause__ is None
    if fault == "500":
        assert hub.count("HEAD") == 1 and hub.count("GET") == 0  # at once, no back-off
    assert cache_files(tmp_path) == []  # no blob, no snapshot link, no partial file
    assert REPO not in repos_on_disk()  # search does not call it "on this machine"
    # the Hub mended, the next run downloads it whole
    hub.fault(REPO, FILE, "")
    model = create_model(REPO, pretrained=True)
    assert torch.equal(model.fc.weight, sd["fc.weight"]) and REPO in repos_on_disk()


def test_a_dropped_connection_resumes(hub, served):
    sd, data = served
    hub.add(REPO, FILE, data)
    hub.fault(REPO, FILE, "drop-once")
    model = create_model(REPO, pretrained=True)
    assert torch.equal(model.layer4[1].bn2.running_var, sd["layer4.1.bn2.running_var"])
    assert hub.repos[REPO].files[FILE].gets == 2  # the second GET asked for the rest (Range)


def test_a_hub_that_is_gone(hub, served):
    hub.add(REPO, FILE, served[1])
    hub.stop()
    with pytest.raises(WeightsUnavailableError) as err:
        create_model(REPO, pretrained=True)
    text = str(err.value)
    assert text.startswith(f"Could not reach 127.0.0.1:{hub.port} to download {FILE}")
    assert "checkpoint_path" in text


def test_sensor_weights_with_a_wrong_hash_are_deleted(hub, tmp_path):
    w = sensors.sensor_weights("timm/resnet18.ssl4eo_l_oli_sr_moco")
    repo, rest = w.url.split("hf.co/", 1)[1].split("/resolve/")
    revision, filename = rest.split("/", 1)
    torch.manual_seed(3)
    sd = {k: v for k, v in timm.create_model("resnet18", in_chans=7).state_dict().items()
          if not k.startswith("fc.")}  # fmt: skip
    hub.add(repo, filename, torch_bytes(sd), commit=revision)  # not the published file
    for attempt in (1, 2):
        with pytest.raises(WeightsLoadError) as err:
            create_model("timm/resnet18.ssl4eo_l_oli_sr_moco", pretrained=True)
        text = str(err.value)
        assert filename in text and f"not {w.sha256_prefix}" in text and "was deleted" in text
        assert cache_files(tmp_path) == []  # blob and link both gone
        assert hub.repos[repo].files[filename].gets == attempt  # so the next run downloads
    assert hub.count("HEAD", f"/resolve/{revision}/") == 4  # the pinned revision was asked for


def test_checkpoint_path_needs_no_hub(hub, served, tmp_path):
    sd, data = served
    path = tmp_path / "mine.safetensors"
    path.write_bytes(data)
    model = create_model(REPO, pretrained=True, checkpoint_path=str(path))
    assert torch.equal(model.fc.weight, sd["fc.weight"]) and hub.requests == []
    assert os.fspath(path) in model.adaptations[0] and not Path(tmp_path / "hub").exists()


def test_a_handler_progress_bar_gets_the_download(hub, served):
    from modelkit.app import runs

    hub.add(REPO, FILE, served[1])
    calls: list[tuple[float | None, str]] = []

    @runs.shows_downloads
    def handler(name, *rest, progress=lambda fraction, desc=None: calls.append((fraction, desc))):
        return create_model(name, pretrained=True)

    model = handler(REPO, "other", "values")
    assert torch.equal(model.fc.weight, served[0]["fc.weight"])
    mb = f"{len(served[1]) / 1e6:,.1f}"
    assert calls[0] == (0.0, f"Downloading {FILE} of {REPO}: 0.0 of {mb} MB")
    assert calls[-1] == (1.0, f"Downloaded {FILE} of {REPO} ({mb} MB)") and len(calls) >= 3
    calls.clear()
    handler(REPO)  # on disk now: nothing to show
    assert calls == []
    # a progress passed by the caller (gradio passes its own) is the one used
    hub.add("timm/resnet18.a2_in1k", FILE, served[1])
    mine: list = []
    handler("timm/resnet18.a2_in1k", progress=lambda f, desc=None: mine.append(desc))
    assert calls == [] and mine[-1] == f"Downloaded {FILE} of timm/resnet18.a2_in1k ({mb} MB)"
