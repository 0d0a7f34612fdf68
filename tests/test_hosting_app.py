"""The running app with a Space's limits: 16 clients mixing allowed requests with ones the
limits refuse (a 7-billion-parameter model, too many integrated-gradient steps) get their
answers or the limit in words, and the server keeps answering; uploads past the cap are pruned;
a full queue answers that the server is busy.

One server for the module (a start costs about a minute on 2 cores), started as a Space
(``SPACE_ID``) with small caps so that the tests reach them quickly.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio_client")
import httpx  # noqa: E402
from app_server import api_args, call, start_app  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from PIL import Image  # noqa: E402

pytestmark = pytest.mark.slow  # starts the app

# a deployer's model whose every forward takes half a second: requests pile up in the queue
PRELUDE = """
import functools, time
from torchvision.models.resnet import BasicBlock, ResNet
from modelkit.models.registry import get_entry, register_model

class SlowResNet(ResNet):
    def forward(self, x):
        time.sleep(0.5)
        return super().forward(x)

register_model("slow_net", get_entry("resnet18").family,
               functools.partial(SlowResNet, BasicBlock, [1, 1, 1, 1]))
"""
QUEUE_MAX = 20
UPLOADS_MB = 1
ENV = {
    "SPACE_ID": "tests/modelkit",  # a Space's defaults
    "MODELKIT_MAX_MODEL_MB": "12288",  # a 16 GB Space's default, whatever this machine has
    "MODELKIT_QUEUE_MAX": str(QUEUE_MAX),
    "MODELKIT_MAX_UPLOADS_MB": str(UPLOADS_MB),
    "MODELKIT_CLEANUP_EVERY_S": "1",
}
GIANT = "timm/vit_7b_patch16_dinov3"
SESSIONS, LOAD_SECONDS = 16, 12


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start_app(tmp_path_factory.mktemp("hosting"), env=ENV, prelude=PRELUDE)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tiny(server) -> Path:
    path = server.tmp / "tiny.png"
    pixels = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def explain_steps(client, image: Path, steps: int):
    return client.predict(handle_file(str(image)), "efficientnet_lite0", True, None, "", None,
                          "auto", "integrated_gradients", "", "mean", steps,
                          api_name="/explain")  # fmt: skip


REFUSALS = {  # what each refused request must say
    "giant": "timm/vit_7b_patch16_dinov3 has 6.7 billion parameters, about 26.9 GB in memory",
    "steps": "Integrated gradients with 100 steps: this server allows at most 64 steps",
}


def session(url, image, seed, deadline, reference, log) -> None:
    rng = random.Random(seed)
    client = Client(url, verbose=False)
    while time.monotonic() < deadline:
        kind = rng.choice(["allowed"] * 4 + ["giant", "steps"])
        try:
            if kind == "allowed":
                result = call(client, str(image), top_k=3)
                log.append((kind, result == reference, ""))
            elif kind == "giant":
                call(client, str(image), model=GIANT, pretrained=False)
                log.append((kind, False, "not refused"))
            else:
                explain_steps(client, image, 100)
                log.append((kind, False, "not refused"))
        except Exception as exc:  # noqa: BLE001 - judged below
            log.append((kind, kind != "allowed" and REFUSALS[kind] in str(exc), str(exc)[:300]))


def test_sixteen_clients_mixing_allowed_and_refused_requests(server, tiny):
    client = Client(server.url, verbose=False)
    reference = call(client, str(tiny), top_k=3)
    assert len(reference["predictions"]) == 3
    log: list[tuple[str, bool, str]] = []
    deadline = time.monotonic() + LOAD_SECONDS
    threads = [threading.Thread(target=session, args=(server.url, tiny, s, deadline, reference,
                                                      log)) for s in range(SESSIONS)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=LOAD_SECONDS + 120)
    assert not any(t.is_alive() for t in threads), "a session hung"
    counts = {k: sum(1 for kind, _, _ in log if kind == k) for k in ("allowed", "giant", "steps")}
    print(f"\n{len(log)} requests from {SESSIONS} sessions: {counts}")
    wrong = [entry for entry in log if not entry[1]]
    assert wrong == [], wrong[:5]
    assert min(counts.values()) >= 3, counts
    # still answering, and the same answer as before the load
    assert call(client, str(tiny), top_k=3) == reference
    found = client.predict("lite0", False, False, "", "name", api_name="/search_models")
    assert "efficientnet_lite0" in [m["name"] for m in found]


def test_search_marks_what_this_server_cannot_run(server):
    client = Client(server.url, verbose=False)
    found = client.predict("vit_7b", False, False, "", "name", api_name="/search_models")
    giant = next(m for m in found if m["name"] == GIANT)
    assert giant["weights"] == "too large for this server"
    assert giant["too_large"].startswith(REFUSALS["giant"])


def upload(server, data: bytes, name: str) -> Path:
    response = httpx.post(server.url + "gradio_api/upload", files={"files": (name, data)})
    response.raise_for_status()
    return Path(response.json()[0])


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_uploads_past_the_cap_are_pruned(server):
    rng = np.random.default_rng(1)
    stored = []
    for i in range(6):  # 6 x 300 kB through a 1 MB cap
        stored.append(upload(server, rng.bytes(300_000), f"upload{i}.bin"))
        time.sleep(0.05)  # distinct modification times: the order of arrival
    assert all(p.is_relative_to(server.temp_dir) for p in stored)
    deadline = time.monotonic() + 15
    while folder_bytes(server.temp_dir) > UPLOADS_MB * 2**20 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert folder_bytes(server.temp_dir) <= UPLOADS_MB * 2**20
    assert stored[-1].is_file() and not stored[0].exists()  # the oldest went first
    assert "upload folder: removed" in server.log()


def test_a_full_queue_says_the_server_is_busy(server, tiny):
    """Requests beyond the queue's length are refused at once: gradio_client raises its
    QueueError "Queue is full! Please try again." (the page shows "This application is
    currently busy. Please try again."); the others are answered."""
    client = Client(server.url, verbose=False)
    args = api_args(model="slow_net", pretrained=False, top_k=1)
    jobs = [client.submit(handle_file(str(tiny)), *args, api_name="/predict") for _ in range(40)]
    answered, refused = 0, []
    for job in jobs:
        try:
            answered += len(job.result(timeout=300)["predictions"]) == 1
        except Exception as exc:  # noqa: BLE001 - judged below
            refused.append(str(exc))
    print(f"\nqueue of {QUEUE_MAX}: {answered} of {len(jobs)} answered, {len(refused)} refused")
    assert refused and all(text == "Queue is full! Please try again." for text in refused)
    assert answered >= QUEUE_MAX and answered + len(refused) == len(jobs)
    assert call(client, str(tiny), top_k=3)["predictions"]  # and then it serves again


def test_the_page_says_busy_in_words():
    """What gradio 6's page shows for a full queue (its words, in its shipped frontend)."""
    import gradio

    frontend = Path(gradio.__file__).parent / "templates" / "frontend" / "assets"
    text = "This application is currently busy. Please try again."
    assert any(text in p.read_text(errors="ignore") for p in frontend.glob("index-*.js"))
