"""Compiled CPU backends: each serves torch's numbers (within the probe's tolerance), keeps its
graph on disk, drops a graph that disagrees, falls back once when export fails, and "auto"
answers with torch until the background compile is done."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from modelkit import create_model
from modelkit.errors import ConfigError
from modelkit.runtime.backends import (
    BACKENDS,
    available_backends,
    check_backend,
    compiled_forward,
    default_backend,
    graphs,
)
from modelkit.runtime.backends.check import TOLERANCE, compare
from modelkit.runtime.backends.outputs import parse_output
from modelkit.runtime.backends.store import GraphStore

ROOT = Path(__file__).resolve().parent.parent
COMPILED = available_backends()
needs_runtime = pytest.mark.skipif(not COMPILED, reason="no compiled runtime installed")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One graph folder for the module: runners of both runtimes share each exported graph."""
    return GraphStore(tmp_path_factory.mktemp("compiled"))


def small(n=1, c=3, size=64, seed=0) -> torch.Tensor:
    return torch.randn(n, c, size, size, generator=torch.Generator().manual_seed(seed))


def assert_close(got, want) -> None:
    got, want = (got, want) if isinstance(want, list) else ([got], [want])
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and g.dtype == torch.float32
        scale = float(w.abs().max())
        assert float((g - w).abs().max()) <= TOLERANCE * max(scale, 1e-3)


def torch_out(model, output: str, x: torch.Tensor):
    from modelkit.runtime.backends.outputs import OutputModule

    with torch.inference_mode():
        return OutputModule(model, parse_output(output))(x)


def serve(model, output, x, backend, store, model_id="test", example=None):
    example = x[:1] if example is None else example
    runner = compiled_forward(model, model_id=model_id, output=output, backend=backend,
                              example=example, store=store)  # fmt: skip
    with torch.inference_mode():
        return runner, runner(x)


# --- the setting ------------------------------------------------------------------------------
def test_backend_names_default_and_errors(monkeypatch):
    assert BACKENDS == ("auto", "torch", "onnxruntime", "openvino")
    monkeypatch.delenv("MODELKIT_BACKEND", raising=False)
    assert default_backend() == "auto" and check_backend(None) == "auto"
    monkeypatch.setenv("MODELKIT_BACKEND", "OpenVINO")
    assert default_backend() == "openvino" and check_backend("") == "openvino"
    assert check_backend(" Torch ") == "torch"
    with pytest.raises(ConfigError, match="backend='tensorrt' is not known; use one of auto"):
        check_backend("tensorrt")
    monkeypatch.setenv("MODELKIT_BACKEND", "fast")
    with pytest.raises(ConfigError, match="MODELKIT_BACKEND='fast' is not a backend"):
        default_backend()
    for bad in ("logit", "features:", "features:a,b", "pooled:1"):
        with pytest.raises(ConfigError, match="use 'logits', 'pooled', 'trunk' or 'features:'"):
            parse_output(bad)
    assert parse_output("features: 0, 2").name == "features:0,2"


def test_probe_compares_scale_and_top1():
    ref = [torch.tensor([[1.0, 5.0, 4.9993], [3.0, 0.0, 3.0]])]
    ok = compare(ref, [ref[0].numpy() + 4e-4], ranked=True)
    assert ok.ok and ok.max_diff == pytest.approx(4e-4, rel=1e-3) and ok.scale == 5.0
    assert "above the tolerance 5.0e-04" in compare(ref, [ref[0].numpy() + 6e-4], True).reason
    flipped = ref[0].numpy().copy()  # within the tolerance, but class 2 overtakes class 1
    flipped[0, 1] -= 4e-4
    flipped[0, 2] += 4e-4
    assert compare(ref, [flipped], ranked=False).ok
    assert (
        compare(ref, [flipped], ranked=True).reason
        == "top-1 differs from torch's on 1 of 2 probe rows"
    )
    tie = ref[0].numpy().copy()
    tie[1, 2] += 1e-4  # torch's own top two of row 1 are equal: either answer is torch's
    assert compare(ref, [tie], ranked=True).ok
    assert "shape" in compare(ref, [np.zeros((2, 4), np.float32)], ranked=True).reason
    assert "NaN" in compare(ref, [ref[0].numpy() * np.nan], ranked=True).reason


def test_auto_keeps_torch_unless_a_runtime_is_clearly_faster():
    from modelkit.runtime.backends.choose import MARGIN, pick, time_candidates

    assert pick({"torch": 1.0, "onnxruntime": 1 - MARGIN / 2}) == "torch"  # within the noise
    assert pick({"torch": 1.0, "onnxruntime": 0.6, "openvino": 0.5}) == "openvino"
    calls = []
    seconds = time_candidates({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                              rounds=3)  # fmt: skip
    assert set(seconds) == {"a", "b"} and calls == ["a", "b", "a", "b", "b", "a", "a", "b"]


# --- each backend gives torch's outputs -------------------------------------------------------
@needs_runtime
@pytest.mark.parametrize("backend", COMPILED)
def test_pretrained_lite0_names_the_cat_like_torch(backend, store):
    import skimage.data
    from PIL import Image

    from modelkit.images.preprocess import preprocess
    from modelkit.images.read import read_image

    buf = io.BytesIO()
    Image.fromarray(skimage.data.chelsea()).save(buf, "PNG")
    model = create_model("efficientnet_lite0", pretrained=True)
    x = preprocess(read_image(buf.getvalue(), "chelsea.png"), model.data_config)
    runner, logits = serve(model, "logits", x, backend, store, "efficientnet_lite0")
    assert runner.backend == backend, runner.notes
    assert_close(logits, torch_out(model, "logits", x))
    assert model.categories[int(logits.argmax())] == "tiger cat"
    assert any(n.startswith(f"{backend}: the probe against torch passed") for n in runner.notes)
    assert not model.training  # exporting left the served model in eval mode


@needs_runtime
@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("output", ["logits", "pooled", "features:0,2,4"])
def test_five_channel_resnet18_with_a_new_head(backend, output, store):
    torch.manual_seed(0)
    model = create_model("resnet18", in_chans=5, num_classes=7)
    x = small(n=3, c=5)
    runner, out = serve(model, output, x, backend, store, "resnet18-5ch", example=x[:1])
    assert runner.backend == backend, runner.notes
    want = torch_out(model, output, x)
    assert_close(out, want)  # exported at batch 1, served at batch 3
    if output.startswith("features"):
        assert [o.shape[1] for o in out] == [64, 128, 512]


@needs_runtime
@pytest.mark.slow
def test_trunk_takes_any_size_where_the_family_allows(store):
    torch.manual_seed(1)
    model = create_model("resnet18")
    before = graphs.STATS["exports"]
    runner = compiled_forward(model, model_id="r18", output="trunk", example=small(),
                              backend=COMPILED[0], store=store)  # fmt: skip
    for size in ((64, 64), (96, 128)):
        x = torch.randn(2, 3, *size)
        with torch.inference_mode():
            assert_close(runner(x), torch_out(model, "trunk", x))
        assert runner.backend == COMPILED[0]
    assert graphs.STATS["exports"] == before + 1  # one free-size graph for both sizes


@needs_runtime
@pytest.mark.slow
def test_a_baked_in_size_is_caught_and_a_fixed_size_graph_serves(store):
    # efficientnet_lite0 pads "SAME" from the input size: the trace bakes 64 px in
    model = create_model("efficientnet_lite0")
    runner = compiled_forward(model, model_id="lite0-trunk", output="trunk", example=small(),
                              backend=COMPILED[0], store=store)  # fmt: skip
    assert any("cannot take any height and width" in n for n in runner.notes), runner.notes
    for size in (64, 96):
        x = small(n=2, size=size)
        with torch.inference_mode():
            assert_close(runner(x), torch_out(model, "trunk", x))
        assert runner.backend == COMPILED[0]


# --- the disk cache ---------------------------------------------------------------------------
@needs_runtime
def test_graphs_are_reused_from_disk_and_never_across_random_draws(tmp_path):
    torch.manual_seed(2)
    model = create_model("mobilenet_v3_small", num_classes=4)
    x = small(n=2, size=32)
    before = graphs.STATS["exports"]
    serve(model, "logits", x, COMPILED[0], GraphStore(tmp_path))
    assert graphs.STATS["exports"] == before + 1
    # a fresh state: another model object with the same weights, another store object
    same = create_model("mobilenet_v3_small", num_classes=4)
    same.load_state_dict(model.state_dict())
    runner, out = serve(same, "logits", x, COMPILED[0], GraphStore(tmp_path))
    assert graphs.STATS["exports"] == before + 1 and runner.backend == COMPILED[0]
    assert_close(out, torch_out(same, "logits", x))
    # another random draw under the same model id gets its own graph
    other = create_model("mobilenet_v3_small", num_classes=4)
    runner, out = serve(other, "logits", x, COMPILED[0], GraphStore(tmp_path))
    assert graphs.STATS["exports"] == before + 2
    assert_close(out, torch_out(other, "logits", x))


@needs_runtime
@pytest.mark.slow
def test_a_new_process_reuses_the_graph_on_disk(tmp_path):
    code = (
        "import torch, sys\n"
        "from modelkit import create_model\n"
        "from modelkit.runtime.backends import compiled_forward, graphs\n"
        "from modelkit.runtime.backends.store import GraphStore\n"
        "torch.manual_seed(3)\n"
        "m = create_model('mobilenet_v3_small', num_classes=3)\n"
        "x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))\n"
        f"r = compiled_forward(m, model_id='m', output='logits', example=x, "
        f"backend='{COMPILED[0]}', store=GraphStore(sys.argv[1]))\n"
        "y = r(x)\n"
        "print(graphs.STATS['exports'], r.backend, float((y - m(x)).abs().max()))\n"
    )
    runs = [subprocess.run([sys.executable, "-W", "ignore", "-c", code, str(tmp_path)],
                           capture_output=True, text=True, cwd=ROOT, check=True).stdout.split()
            for _ in range(2)]  # fmt: skip
    assert [r[:2] for r in runs] == [["1", COMPILED[0]], ["0", COMPILED[0]]]
    assert all(float(r[2]) < 1e-4 for r in runs)


def test_the_store_drops_least_recently_used_graphs(tmp_path):
    import os

    store = GraphStore(tmp_path, size_mb=10)
    for i, key in enumerate(["old", "mid", "new"]):
        store.add(key, lambda d: (d / "model.onnx").write_bytes(b"\0" * 400_000) and {"i": 1})
        os.utime(tmp_path / key / "meta.json", (1000 + i, 1000 + i))
    store.find("old")  # used just now: the least recently used is "mid" now
    store.size_limit = 2**20
    assert store.trim() == ["mid"] and store.total_bytes() <= 2**20
    assert store.find("old") and store.find("new") and store.find("mid") is None


# --- never wrong ------------------------------------------------------------------------------
@needs_runtime
@pytest.mark.parametrize("backend", COMPILED)
def test_a_graph_that_disagrees_is_dropped_and_torch_serves(backend, store, monkeypatch):
    session = graphs.SESSIONS[backend]
    real = session.run
    monkeypatch.setattr(session, "run", lambda self, x: [a + 0.01 for a in real(self, x)])
    torch.manual_seed(4)
    model = create_model("resnet18", num_classes=5)
    x = small(n=2)
    runner, out = serve(model, "logits", x, backend, store, "r18-wrong")
    assert runner.backend == "torch"
    assert torch.equal(out, torch_out(model, "logits", x))
    assert any("disagrees with torch" in n and "dropped" in n for n in runner.notes)


@needs_runtime
def test_an_export_failure_falls_back_once_with_its_reason(store, monkeypatch):
    calls = []

    def refuse(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("Exporting the operator 'aten::magic' to ONNX is not supported")

    monkeypatch.setattr(torch.onnx, "export", refuse)
    torch.manual_seed(5)
    model = create_model("resnet18", num_classes=6)
    x = small(n=2)
    for output in ("logits", "logits"):  # the second runner is a fresh one: same key
        model.modelkit.runners.clear()
        runner, out = serve(model, output, x, COMPILED[0], store, "r18-refused")
        assert runner.backend == "torch" and torch.equal(out, torch_out(model, "logits", x))
        assert any("could not be exported to ONNX" in n and "aten::magic" in n
                   for n in runner.notes)  # fmt: skip
    assert len(calls) == 1


# --- auto -------------------------------------------------------------------------------------
@needs_runtime
def test_auto_answers_with_torch_then_switches_and_remembers(tmp_path, monkeypatch):
    import threading

    gate = threading.Event()
    export = graphs.export_onnx

    def held_export(*args, **kwargs):
        assert gate.wait(120)
        return export(*args, **kwargs)

    monkeypatch.setattr(graphs, "export_onnx", held_export)
    # the timing is the machine's: here it is fixed so that the last runtime is the fastest
    fastest = COMPILED[-1]
    timed = []

    def fake_times(calls, **kwargs):
        timed.append(sorted(calls))
        return {name: (0.001 if name == fastest else 0.01) for name in calls}

    monkeypatch.setattr("modelkit.runtime.backends.runner.time_candidates", fake_times)
    torch.manual_seed(6)
    model = create_model("resnet18", num_classes=3)
    x = small(n=2)
    runner, first = serve(model, "logits", x, "auto", GraphStore(tmp_path), "r18-auto", x)
    assert runner.backend == "torch" and torch.equal(first, torch_out(model, "logits", x))
    gate.set()
    assert runner.ready.wait(120) and runner.wait(120)
    with torch.inference_mode():
        second = runner(x)
    assert runner.backend == fastest and timed == [sorted(["torch", *COMPILED])]
    assert_close(second, torch_out(model, "logits", x))
    choice = json.loads(next(tmp_path.glob("*/choice.json")).read_text())
    assert choice[f"batch 2, {torch.get_num_threads()} threads"]["backend"] == fastest
    # a restart: the graph and the choice come from disk, nothing is timed again
    model.modelkit.runners.clear()
    runner, _ = serve(model, "logits", x, "auto", GraphStore(tmp_path), "r18-auto", x)
    assert runner.wait(120)
    with torch.inference_mode():
        runner(x)
    assert runner.backend == fastest and len(timed) == 1


# --- torch serves -----------------------------------------------------------------------------
def test_a_model_off_the_cpu_stays_on_torch(store):
    # the meta device stands in for CUDA here: any device but the CPU is served by torch
    with torch.device("meta"):
        model = create_model("resnet18", num_classes=2)
    x = torch.empty(2, 3, 64, 64, device="meta")
    before = graphs.STATS["exports"]
    runner, out = serve(model, "logits", x, "openvino" if COMPILED else "torch", store, "meta")
    assert runner.backend == "torch" and out.device.type == "meta" and out.shape == (2, 2)
    assert graphs.STATS["exports"] == before
    if COMPILED:
        assert any("torch serves there" in n for n in runner.notes)


def test_without_the_runtimes_everything_runs_on_torch():
    code = (
        "import sys\n"
        "for name in ('onnx', 'onnxruntime', 'openvino'):\n"
        "    sys.modules[name] = None\n"
        "import torch\n"
        "from modelkit import create_model\n"
        "from modelkit.errors import ConfigError\n"
        "from modelkit.runtime.backends import compiled_forward, available_backends\n"
        "m = create_model('resnet18', num_classes=2)\n"
        "x = torch.randn(1, 3, 32, 32)\n"
        "r = compiled_forward(m, model_id='m', output='logits', example=x, backend='auto')\n"
        "assert torch.equal(r(x), m(x)) and r.backend == 'torch', r.notes\n"
        "try:\n"
        "    compiled_forward(m, model_id='m', output='logits', example=x, backend='openvino')\n"
        "except ConfigError as e:\n"
        "    print(e)\n"
        "print(available_backends(), r.notes)\n"
    )
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True,
                         text=True, cwd=ROOT, check=True).stdout  # fmt: skip
    assert "needs the Python package(s) onnx, openvino, which are not installed" in out
    assert "() [" in out and "'no compiled runtime (onnxruntime, openvino) is installed; " in out


# --- int8 -------------------------------------------------------------------------------------
def test_int8_needs_calibration_images():
    model = create_model("resnet18", num_classes=2)
    with pytest.raises(ConfigError, match="precision='int8' needs calibration images"):
        compiled_forward(model, model_id="m", output="logits", example=small(), backend="auto",
                         precision="int8")  # fmt: skip
    with pytest.raises(ConfigError, match="precision='bf16' cannot run on a compiled backend"):
        compiled_forward(model, model_id="m", output="logits", example=small(), backend="auto",
                         precision="bf16")  # fmt: skip


@needs_runtime
def test_int8_without_vnni_serves_float32_and_says_so(store, monkeypatch):
    monkeypatch.setattr(graphs, "has_vnni", lambda: False)
    torch.manual_seed(7)
    model = create_model("resnet18", num_classes=3)
    x = small(n=2)
    runner = compiled_forward(model, model_id="r18-int8", output="logits", example=x,
                              backend=COMPILED[0], precision="int8", calibration=[x],
                              store=store)  # fmt: skip
    with torch.inference_mode():
        assert_close(runner(x), torch_out(model, "logits", x))
    assert runner.backend == COMPILED[0]
    assert any("int8 needs a CPU with VNNI" in n for n in runner.notes)


@needs_runtime
@pytest.mark.slow
@pytest.mark.skipif(not graphs.has_vnni(), reason="int8 needs VNNI")
def test_int8_is_gated_on_top1_agreement_with_float32(tmp_path):
    import re

    import skimage.data

    from modelkit.images.limits import ImageArray
    from modelkit.images.preprocess import preprocess

    model = create_model("efficientnet_lite0", pretrained=True)
    photos = [skimage.data.chelsea(), skimage.data.astronaut(), skimage.data.coffee()]
    rng = np.random.default_rng(0)
    images = []
    for i in range(16):
        p = photos[i % 3]
        r, c = rng.integers(0, p.shape[0] - 250), rng.integers(0, p.shape[1] - 250)
        chw = np.ascontiguousarray(p[r : r + 250, c : c + 250].transpose(2, 0, 1))
        array = ImageArray(chw, "crop.png", "png", chw.shape, "CHW", "uint8", (0, 255))
        images.append(preprocess(array, model.data_config))
    batches = [torch.cat(images[:8]), torch.cat(images[8:])]
    store = GraphStore(tmp_path)
    for backend in COMPILED:
        runner = compiled_forward(model, model_id="lite0", output="logits", example=batches[0],
                                  backend=backend, precision="int8", calibration=batches,
                                  store=store)  # fmt: skip
        gate = [n for n in runner.notes if "int8 agrees with float32" in n]
        assert len(gate) == 1, runner.notes
        agree, total = (int(n) for n in re.findall(r"top-1 of (\d+) of (\d+)", gate[0])[0])
        with torch.inference_mode():
            got, want = runner(batches[0]), model(batches[0])
        assert total == 16 and runner.backend == backend
        if agree / total >= 0.99:  # int8 serves: close to float32, not equal to it
            assert "gate passes" in gate[0] and not torch.equal(got, want)
            assert (got.argmax(1) == want.argmax(1)).float().mean() >= 0.99
        else:  # float32 serves
            assert "gate fails" in gate[0]
            assert_close(got, want)
