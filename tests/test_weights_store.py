"""Downloads bounded: a checkpoint larger than MODELKIT_MAX_WEIGHTS_GB, or than the free disk
less the margin, is refused before any byte is written (the loopback Hub of tests/fake_hub.py,
and a plain URL); the files modelkit downloaded are kept under the total, least recently used
first, never one that a build is reading, and never a file modelkit did not download."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fake_hub import FakeHub

from modelkit.errors import DiskLimitError
from modelkit.models import hub as hub_module
from modelkit.models import weights_store
from modelkit.models.pretrained import download
from modelkit.models.registry import get_pretrained_cfg

REPOS = ("timm/resnet18.a1_in1k", "timm/resnet34.a1_in1k", "timm/resnet50.a1_in1k")
FILE = "model.safetensors"
SIZE = 40_000


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """The loopback Hub, huggingface_hub pointed at it, its cache and modelkit's in tmp_path."""
    from huggingface_hub import constants

    server = FakeHub().start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("MODELKIT_CACHE_DIR", str(tmp_path / "modelkit"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("MODELKIT_OFFLINE")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    for i, repo in enumerate(REPOS):  # three files of 40 kB
        server.add(repo, FILE, bytes([i]) * SIZE)
    yield server
    server.stop()


def files_below(root: Path) -> list[Path]:
    """Every file (or link) below root, locks and markers aside."""
    return sorted(
        p for p in root.rglob("*")
        if (p.is_file() or p.is_symlink()) and ".locks" not in p.parts and p.name != "CACHEDIR.TAG"
    )  # fmt: skip


def fetch(repo: str) -> str:
    return hub_module.hub_file(get_pretrained_cfg(repo))


def cap_at(monkeypatch, n_bytes: int) -> None:
    monkeypatch.setenv("MODELKIT_MAX_WEIGHTS_GB", repr(n_bytes / 2**30))


def test_a_file_over_the_total_is_refused_before_any_byte(hub, monkeypatch, tmp_path):
    cap_at(monkeypatch, SIZE - 1000)
    with pytest.raises(DiskLimitError) as caught:
        fetch(REPOS[0])
    assert str(caught.value).startswith(
        f"{FILE} of {REPOS[0]} is 40 kB; this server keeps at most 39 kB of downloaded weights "
        "(MODELKIT_MAX_WEIGHTS_GB), so it was not downloaded."
    )
    assert hub.count("GET") == 0 and hub.repos[REPOS[0]].files[FILE].gets == 0
    assert files_below(tmp_path / "hub") == []  # nothing written, not even an .incomplete file


def test_a_file_over_the_free_disk_is_refused_before_any_byte(hub, monkeypatch, tmp_path):
    monkeypatch.setenv("MODELKIT_MIN_FREE_DISK_MB", str(10**9))  # a petabyte must stay free
    with pytest.raises(DiskLimitError, match="MODELKIT_MIN_FREE_DISK_MB"):
        fetch(REPOS[0])
    assert hub.count("GET") == 0 and files_below(tmp_path / "hub") == []


def test_the_total_is_kept_least_recently_used_first(hub, monkeypatch, tmp_path):
    cap_at(monkeypatch, 2 * SIZE + 1000)  # two files fit
    # a file a person put in the Hugging Face cache themselves: never modelkit's to remove
    own = tmp_path / "hub" / "models--someone--theirs" / "snapshots" / "abc" / FILE
    own.parent.mkdir(parents=True)
    own.write_bytes(b"mine" * 50_000)
    first, second = fetch(REPOS[0]), fetch(REPOS[1])
    fetch(REPOS[0])  # used again (from the cache): now the second is the least recently used
    third = fetch(REPOS[2])
    assert Path(first).is_file() and Path(third).is_file() and own.is_file()
    assert not Path(second).exists()
    assert not Path(second).parent.exists()  # its snapshot folder: no longer "on disk"
    ledger = weights_store._load()
    assert sorted(ledger) == sorted([first, third])
    assert sum(e["size"] for e in ledger.values()) <= 2 * SIZE + 1000
    blobs = list((tmp_path / "hub" / "models--timm--resnet34.a1_in1k" / "blobs").iterdir())
    assert blobs == []  # the blob went with its link


def test_a_file_a_build_is_reading_is_never_evicted(hub, monkeypatch):
    cap_at(monkeypatch, SIZE + 1000)  # one file fits
    first = fetch(REPOS[0])
    with weights_store.in_use(first), pytest.raises(DiskLimitError, match="in use"):
        fetch(REPOS[1])
    assert Path(first).is_file() and hub.repos[REPOS[1]].files[FILE].gets == 0
    second = fetch(REPOS[1])  # the build is done: the first one makes room
    assert Path(second).is_file() and not Path(first).exists()


class Sized(BaseHTTPRequestHandler):
    """A plain web server (download.pytorch.org's role) announcing 5 MB and sending them."""

    size = 5_000_000
    gets = 0

    def do_GET(self):  # noqa: N802 - http.server's name
        type(self).gets += 1
        self.send_response(200)
        self.send_header("Content-Length", str(self.size))
        self.end_headers()
        try:
            self.wfile.write(b"\0" * self.size)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


def test_a_plain_url_over_the_total_is_refused_before_any_byte(monkeypatch, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sized)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("MODELKIT_CACHE_DIR", str(tmp_path / "modelkit"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    dest = tmp_path / "torch" / "checkpoints" / "resnet18-f37072fd.pth"
    url = f"http://127.0.0.1:{server.server_address[1]}/resnet18-f37072fd.pth"
    try:
        cap_at(monkeypatch, 1_000_000)
        with pytest.raises(DiskLimitError, match="resnet18-f37072fd.pth is 5.0 MB; this server"):
            download(url, dest)
        assert not dest.parent.exists()  # not even the folder
        cap_at(monkeypatch, 6_000_000)
        download(url, dest)
        assert dest.stat().st_size == 5_000_000
        assert list(weights_store._load()) == [str(dest)]
    finally:
        server.shutdown()
        server.server_close()
