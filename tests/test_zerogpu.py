"""ZeroGPU: off it the model handlers are the plain functions; on it (simulated with the `spaces`
package's own decorator, see tests/zerogpu_sim.py) they answer exactly as off it; the Space's
front matter and the requirements fit what ZeroGPU supports."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

spaces = pytest.importorskip("spaces")

from test_project import ROOT, front_matter, pins  # noqa: E402

from modelkit.app import gpu  # noqa: E402

IMAGE = ROOT / "assets" / "chelsea.png"
FORM = ("efficientnet_lite0", True, "", None, "", None, "", 5, "auto", "auto", "fp32", "torch")
API_FORM = ("efficientnet_lite0", True, None, "", None, "", 5, "auto")

# Hugging Face's ZeroGPU page (docs/hub/spaces-zerogpu.md, hub-docs commit 34ee0f0, July 2026):
# Python 3.12.12 or 3.10.13; PyTorch "almost all versions from 2.8.0 to latest".
ZERO_GPU_PYTHONS = ("3.12.12", "3.10.13")
ZERO_GPU_MIN_TORCH = (2, 8)


def test_off_zero_gpu_the_handlers_are_the_functions_themselves(monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    from modelkit.app import api, explore

    def handler(x):
        return x

    assert spaces.GPU(duration=5)(handler) is handler  # the package's own no-op off ZeroGPU
    assert gpu.on_gpu(5)(handler) is handler
    assert gpu.on_gpu(**gpu.for_model(lambda x: None))(handler) is handler
    # guarded / api_guarded wrap the model handlers with runs.shows_downloads only (a download
    # shows in the progress bar), nothing of on_gpu's in between
    from modelkit.app import runs

    shows = runs.shows_downloads(lambda progress=None: None).__code__
    for wrapped in (explore.on_run, api.api_predict, api.api_features):
        assert wrapped.__wrapped__.__code__ is shows
        inner = wrapped.__wrapped__.__wrapped__
        assert inner.__module__ in ("modelkit.app.explore", "modelkit.app.api")
        assert not hasattr(inner, "__wrapped__") and not hasattr(inner, "gpu_duration")
    assert not hasattr(explore._show_level, "__wrapped__")


@pytest.mark.parametrize("value", ["true", "1", "True", "t"])
def test_zero_gpu_is_read_as_spaces_reads_it(monkeypatch, value):
    monkeypatch.setenv("SPACES_ZERO_GPU", value)
    assert gpu.on_zero_gpu()
    from spaces.config import boolean

    assert boolean(value)


def test_declared_seconds_grow_with_the_model_and_the_work():
    small = gpu.model_seconds("resnet18")
    assert gpu.MIN_SECONDS <= small <= 10
    assert gpu.model_seconds("vit_l_16") > gpu.model_seconds("resnet50") >= small
    assert gpu.model_seconds("resnet18", images=64, passes=2) > small
    assert gpu.model_seconds("vit_l_16", images=10_000) == gpu.MAX_SECONDS
    assert gpu.model_seconds("no_such_model") == gpu.FALLBACK_SECONDS
    # a duration function never fails: the handler reports a bad setting itself
    duration = gpu.for_model(lambda name: (_ for _ in ()).throw(ValueError(name)))["duration"]
    assert gpu._safe_duration(duration)("x") == gpu.FALLBACK_SECONDS


def test_front_matter_and_requirements_fit_zero_gpu():
    meta, pinned = front_matter(), pins()
    assert meta["python_version"] in ZERO_GPU_PYTHONS
    torch_pin = tuple(int(p) for p in pinned["torch"].split(".")[:2])
    assert torch_pin >= ZERO_GPU_MIN_TORCH
    assert int(meta["sdk_version"].split(".")[0]) >= 4  # ZeroGPU: Gradio 4+
    requirements = (ROOT / "requirements.txt").read_text()
    assert re.search(r"^spaces\b", requirements, re.M), "the Space needs the spaces package"
    # the pinned Python of the Space is one the project declares it supports
    pyproject = (ROOT / "pyproject.toml").read_text()
    floor = re.search(r'requires-python\s*=\s*">=(\d+)\.(\d+)"', pyproject)
    major, minor = (int(p) for p in meta["python_version"].split(".")[:2])
    assert (major, minor) >= (int(floor[1]), int(floor[2]))


def bars(trace: dict) -> list[float]:
    """A plotly bar trace's lengths (its JSON packs them as base64 float64)."""
    import base64

    import numpy as np

    x = trace["x"]
    return np.frombuffer(base64.b64decode(x["bdata"]), x["dtype"]).tolist() if "bdata" in x else x


@pytest.mark.slow
def test_simulated_zero_gpu_answers_as_off_it(tmp_path):
    """The handlers through spaces.GPU (forked worker, pickles, scheduling) give what they give
    off ZeroGPU; a user's mistake in the worker reaches the page and the API as its message."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPACES_", "ZEROGPU_"))}
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "zerogpu_sim.py"), str(tmp_path), str(IMAGE)],
        capture_output=True, text=True, timeout=600, env=env | {"MODELKIT_OFFLINE": "1"},
    )  # fmt: skip
    line = [x for x in done.stdout.splitlines() if x.startswith("ZEROGPU-SIM ")]
    assert done.returncode == 0 and line, done.stderr[-3000:]
    sim = json.loads(line[0].split(" ", 1)[1])

    import gradio as gr

    from modelkit.app import api, explore, guard

    with gr.Blocks():
        guard.status_line()
    ref = explore.on_run(str(IMAGE), *FORM)
    assert sim["cuda_emulated"] is True and sim["worker_pid"] != sim["main_pid"]
    # the same bars; the numbers to float rounding (another process may run other thread counts)
    chart, ref_chart = sim["run"]["chart"], json.loads(ref[3].to_json())["data"][0]
    assert list(chart["y"]) == list(ref_chart["y"])
    assert bars(chart) == pytest.approx(bars(ref_chart), abs=1e-5)
    assert sim["run"]["note"] == ref[4]
    assert sim["run"]["last"]["run"] == ref[-1]["run"]
    assert sim["level"] == explore.on_level(1, ref[-1])[1]
    expected = api.api_predict(str(IMAGE), *API_FORM)
    assert [p["label"] for p in sim["predict"]["predictions"]] == [
        p["label"] for p in expected["predictions"]
    ]
    assert [p["probability"] for p in sim["predict"]["predictions"]] == pytest.approx(
        [p["probability"] for p in expected["predictions"]], abs=1e-5
    )
    assert sim["predict"]["predictions"][0]["label"] == "tiger cat"
    assert sim["error_page"] == explore.on_run(None, *FORM)[guard.status()]
    assert "No image yet" in sim["error_page"]
    with pytest.raises(gr.Error) as raised:
        api.api_predict(str(IMAGE), "no_such_model", *API_FORM[1:])
    assert sim["error_api"] == raised.value.message
    # every GPU call declared the estimate of its model and work (the unknown model never asked)
    run_s = gpu.model_seconds("efficientnet_lite0", images=1, passes=2)
    one_s = gpu.model_seconds("efficientnet_lite0")
    assert sim["declared"] == [run_s, one_s, one_s, run_s, 5]
    # the main process holds the run's model on the emulated cuda; its weights export is exact
    assert sim["main_cache_device"].startswith("cuda")
    from safetensors.torch import load_file

    from modelkit.app import runs
    from modelkit.app.runs import FormRun

    exported = load_file(sim["weights_file"])
    model = runs.cached_model(FormRun.from_dict(ref[-1]["run"]).settings)
    state = model.state_dict()
    assert exported.keys() == state.keys()
    assert all(bool((exported[k] == state[k].cpu()).all()) for k in state)
