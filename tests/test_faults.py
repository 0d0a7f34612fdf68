"""Faults while the app serves: a model that cannot be built, weights files that are corrupt on
disk, the result cache folder deleted, unwritable or replaced. Each gives a clear message (or,
for the cache, none is needed: the request still succeeds) and the app keeps serving others.
"""

from __future__ import annotations

import os
import shutil
import stat

import numpy as np
import pytest
import torch

pytest.importorskip("gradio_client")
from app_server import ASSETS, call, start_app  # noqa: E402
from gradio_client import Client  # noqa: E402

pytestmark = pytest.mark.slow  # starts the app beside broken models

# Run in the server before the app starts, as a deployer's own start script would register models.
PRELUDE = """
import functools
from torchvision.models.resnet import BasicBlock, ResNet
from modelkit.models.registry import get_entry, register_model
# a ResNet whose definition lists three stages where the code needs four: it cannot be built
register_model(
    "broken_resnet", get_entry("resnet18").family, functools.partial(ResNet, BasicBlock, [2, 2, 2])
)
"""
HUB_FILE = "resnet18-f37072fd.pth"  # where the torch hub cache keeps resnet18's weights
TRACEBACK_MARKS = ("Traceback", 'File "', "line ")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults")
    server = start_app(tmp, env={"TORCH_HOME": str(tmp / "torch")}, prelude=PRELUDE)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(server):
    return Client(server.url, verbose=False)


def error_of(client, *args, **form) -> str:
    with pytest.raises(Exception) as caught:  # noqa: PT011 - gradio_client's AppError
        call(client, *args, **form)
    message = str(caught.value)
    assert not any(mark in message for mark in TRACEBACK_MARKS), message
    return message


def still_serving(client) -> None:
    """The default model still answers correctly."""
    result = call(client, "chelsea.png", top_k=3)
    assert [p["label"] for p in result["predictions"]] == ["tiger cat", "Egyptian cat", "tabby"]


# --- a model that fails to build -------------------------------------------------------------


def test_the_app_starts_beside_a_broken_model(server):
    assert "model broken_resnet: its facts could not be computed" in server.log()


def test_a_model_that_fails_to_build(client):
    for api in ("/predict", "/features"):
        message = error_of(client, "chelsea.png", api, model="broken_resnet", pretrained=False)
        assert "broken_resnet" in message and "could not be built" in message
        assert "IndexError" in message and "choose another model" in message
        still_serving(client)


def test_search_lists_the_others_beside_a_broken_model(client):
    found = client.predict("resnet", False, False, "", "name", api_name="/search_models")
    assert "resnet18" in [m["name"] for m in found]


# --- weights corrupt on disk -----------------------------------------------------------------


class RunsCode:
    """A "checkpoint" whose unpickling would run a command (creating ``marker``)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def resnet_state(arch: str, seed: int = 0) -> dict:
    from modelkit import create_model

    torch.manual_seed(seed)
    return create_model(arch).state_dict()


def test_corrupt_weights_files(server, client, tmp_path):
    hub = server.tmp / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True, exist_ok=True)
    path = hub / HUB_FILE
    good = tmp_path / "good.pth"
    torch.save(resnet_state("resnet18"), good)
    marker = tmp_path / "code-ran"
    variants = {
        "garbage": lambda: path.write_bytes(b"<html>502 Bad Gateway</html>" * 100),
        "truncated": lambda: path.write_bytes(good.read_bytes()[: good.stat().st_size // 2]),
        "empty": lambda: path.write_bytes(b""),
        "pickled code": lambda: torch.save({"fc.weight": RunsCode(str(marker))}, path),
    }
    for name, write in variants.items():
        write()
        message = error_of(client, "chelsea.png", model="resnet18")
        assert "Could not read weights file" in message and HUB_FILE in message, name
        assert "delete it and get it again" in message, name
        assert not marker.exists(), "unpickling ran code from the weights file"
        still_serving(client)

    torch.save(resnet_state("resnet34"), path)  # a real checkpoint, of another model
    message = error_of(client, "chelsea.png", model="resnet18")
    assert "do not fit resnet18" in message and HUB_FILE in message
    still_serving(client)

    path.unlink()  # what the message says to do; offline, the next message says where to put it
    message = error_of(client, "chelsea.png", model="resnet18")
    assert "not on this machine" in message and str(path) in message

    shutil.copy(good, path)  # the app recovers without a restart once the file is right
    result = call(client, "chelsea.png", model="resnet18", top_k=5)
    expected = reference_resnet18(server)
    assert [p["index"] for p in result["predictions"]] == expected.indices
    np.testing.assert_allclose(
        [p["probability"] for p in result["predictions"]], expected.probabilities, atol=2e-5
    )


def reference_resnet18(server):
    """resnet18 with the same weights file, in this process, one request, no result cache."""
    from modelkit.images.read import read_image
    from modelkit.runtime import engine
    from modelkit.runtime.model_cache import ModelCache

    old = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(server.tmp / "torch")
    try:
        image = read_image((ASSETS / "chelsea.png").read_bytes(), "chelsea.png")
        return engine.predict(image, "resnet18", pretrained=True, top_k=5,
                              use_result_cache=False, model_cache=ModelCache())  # fmt: skip
    finally:
        if old is None:
            os.environ.pop("TORCH_HOME")
        else:
            os.environ["TORCH_HOME"] = old


# --- the result cache folder goes away, becomes unwritable, becomes a file ----------------------


def chmod_stops_writes(folder) -> bool:
    """Whether a read-only folder refuses new files for this user (root ignores the mode)."""
    probe = folder / "probe"
    try:
        probe.write_bytes(b"x")
    except PermissionError:
        return True
    probe.unlink()
    return False


def test_result_cache_faults_while_serving(server, client):
    cache = server.cache_dir
    form = dict(model="efficientnet_lite1")
    first = call(client, "coffee.png", top_k=4, **form)
    assert first["predictions"][0]["label"] == "espresso"
    assert (cache / "cache.db").is_file()

    def serves_correctly(top_k: int, levels: str) -> None:
        again = call(client, "coffee.png", top_k=4, **form)
        assert again == first
        more = call(client, "coffee.png", top_k=top_k, **form)  # a new question: computed
        assert more["predictions"][:4] == first["predictions"]
        summary, npz = call(client, "coffee.png", "/features", out_indices=levels, **form)
        with np.load(npz, allow_pickle=False) as arrays:
            assert sorted(arrays.files) == [f"level_{i}" for i in levels.split(",")]
        still_serving(client)

    shutil.rmtree(cache)  # deleted while the app holds it open
    serves_correctly(6, "4")

    faults = ["replaced by a file"]
    cache.mkdir(exist_ok=True)
    cache.chmod(stat.S_IRUSR | stat.S_IXUSR)  # read-only
    try:
        if chmod_stops_writes(cache):
            faults.append("read-only")
            serves_correctly(7, "3")
    finally:
        cache.chmod(stat.S_IRWXU)
    print(f"\nresult cache faults checked: deleted, {', '.join(reversed(faults))}")

    shutil.rmtree(cache)  # a file where the folder was: nothing can be written under it
    cache.write_bytes(b"not a folder")
    try:
        serves_correctly(8, "2")
    finally:
        cache.unlink()

    warnings = [line for line in server.log().splitlines() if "Result cache at" in line]
    assert len(warnings) <= 4, warnings  # logged once per kind of problem, not per request
    assert not any(mark in line for line in warnings for mark in ("Traceback",))


def test_the_corrupt_weights_message_gives_no_unsafe_advice(tmp_path):
    from modelkit.errors import WeightsLoadError
    from modelkit.models.pretrained import load_file

    path = tmp_path / "resnet18.pth"
    torch.save({"fc.weight": RunsCode(str(tmp_path / "never"))}, path)
    with pytest.raises(WeightsLoadError) as caught:
        load_file(path)
    assert "weights_only" not in str(caught.value)
