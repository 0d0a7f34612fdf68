"""Build one compiled graph for one input shape: find it on disk or export it, load it into
each runtime, and keep only the runtimes whose outputs pass the probe against torch.

A failed export is remembered for the process (``FAILED``) and not tried again; a graph whose
free height and width give wrong answers at another size is marked "fixed size only" on disk,
and a graph for that exact size is made instead.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from modelkit.runtime.backends.check import Verdict, compare, probe_input
from modelkit.runtime.backends.export import ExportFailed, export_onnx
from modelkit.runtime.backends.names import has_vnni
from modelkit.runtime.backends.onnxrt import OrtSession
from modelkit.runtime.backends.openvino import OvSession
from modelkit.runtime.backends.outputs import RANKED, Output, OutputModule, as_list
from modelkit.runtime.backends.store import GraphStore, graph_key

SESSIONS = {"onnxruntime": OrtSession, "openvino": OvSession}
GRAPH = "model.onnx"
FAILED: dict[str, str] = {}  # graph key -> why its export failed (this process)
STATS: Counter = Counter()  # "exports", "probes", "quantized": for tests and the bench
SPATIAL_STEP = (32, 64)  # the free-size probe adds this to the example's height and width

Note = Callable[[str], None]


@dataclass
class Plan:
    """What every graph of one runner shares."""

    module: OutputModule
    model_id: str
    output: Output
    fingerprint: str
    backends: tuple[str, ...]  # the runtimes to load and probe
    threads: int
    store: GraphStore
    precision: str = "fp32"
    calibration: Sequence[torch.Tensor] = ()


@dataclass
class Graph:
    key: str
    folder: Path
    spatial: str  # "dynamic" (any height and width) or "fixed"
    like_list: bool  # torch returns a list of tensors
    sessions: dict[str, object] = field(default_factory=dict)  # runtimes that passed the probe
    int8: set[str] = field(default_factory=set)  # runtimes serving the int8 graph
    export_seconds: float = 0.0
    verdicts: dict[str, Verdict] = field(default_factory=dict)


def reason_of(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def torch_outputs(module: OutputModule, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        return as_list(module(x))


def build_graph(plan: Plan, example: torch.Tensor, note: Note) -> Graph | None:
    """The graph that serves inputs shaped like ``example`` (1, C, H, W), or None (torch serves).

    Args:
        plan: the runner's shared settings.
        example: one preprocessed image, the size of the inputs to serve.
        note: takes each plain-words note (fallbacks, probe results).
    Returns:
        A Graph with at least one runtime that passed the probe, or None.
    """
    c, h, w = example.shape[1:]
    policies = (["dynamic"] if plan.output.dynamic_spatial else []) + [f"fixed {c}x{h}x{w}"]
    for policy in policies:
        graph = _build(plan, example, policy, note)
        if graph is not None:
            if plan.precision == "int8":
                _int8(plan, graph, note)
            return graph
    return None


def _export(plan: Plan, example: torch.Tensor, policy: str, folder: Path) -> dict:
    with torch.no_grad():
        raw = plan.module(example)
    outputs = as_list(raw)
    done = export_onnx(plan.module, example, folder / GRAPH, len(outputs), policy == "dynamic")
    STATS["exports"] += 1
    return {"model_id": plan.model_id, "output": plan.output.name, "shape": policy,
            "outputs": len(outputs), "like_list": isinstance(raw, list | tuple),
            "export_seconds": round(done.seconds, 3),
            "traced_constants": done.traced_constants}  # fmt: skip


def _build(plan: Plan, example: torch.Tensor, policy: str, note: Note) -> Graph | None:
    key = graph_key(plan.model_id, plan.fingerprint, plan.output.name, policy, "fp32")
    if key in FAILED:
        note(FAILED[key])
        return None
    folder = plan.store.find(key)
    if folder is None:
        try:
            folder = plan.store.add(key, lambda tmp: _export(plan, example, policy, tmp))
        except ExportFailed as error:
            FAILED[key] = f"the model could not be exported to ONNX ({error}); torch serves it"
            note(FAILED[key])
            return None
        except OSError as error:
            note(f"the compiled-graph folder {plan.store.directory} cannot be written "
                 f"({reason_of(error)}); torch serves")  # fmt: skip
            return None
    meta = plan.store.meta(key)
    if meta.get("rejected"):  # this free-size graph was found wrong at another size before
        note(f"{meta['rejected']}; a graph of the input's exact size serves")
        return None
    like_list = meta.get("like_list")
    if like_list is None:  # a meta.json without it (older or edited): ask torch
        with torch.no_grad():
            like_list = isinstance(plan.module(example), list | tuple)
    graph = Graph(key, folder, "dynamic" if policy == "dynamic" else "fixed", like_list,
                  export_seconds=float(meta.get("export_seconds", 0.0)))  # fmt: skip
    graph.sessions = load_sessions(plan, folder / GRAPH, note)
    _probe(plan, graph, example, note)
    if not graph.sessions:
        return None
    return graph


def load_sessions(plan: Plan, path: Path, note: Note) -> dict[str, object]:
    sessions = {}
    for backend in plan.backends:
        try:
            sessions[backend] = SESSIONS[backend](path, plan.threads, path.parent / "ov_cache")
        except Exception as error:  # noqa: BLE001 - a runtime that cannot load it is skipped
            note(f"{backend} could not load the graph ({reason_of(error)}); it is skipped")
    return sessions


def _probe(plan: Plan, graph: Graph, example: torch.Tensor, note: Note) -> None:
    """Drop every session whose outputs disagree with torch's (at a second size too, for a
    graph of free size: when that fails, the folder is marked and the graph dropped)."""
    STATS["probes"] += 1
    ranked = plan.output.kind in RANKED
    inputs = [probe_input(example)]
    if graph.spatial == "dynamic":
        h, w = example.shape[-2:]
        inputs.append(probe_input(example, size=(h + SPATIAL_STEP[0], w + SPATIAL_STEP[1])))
    references = []
    for x in inputs:
        try:
            references.append(torch_outputs(plan.module, x))
        except Exception as error:  # noqa: BLE001 - the model itself takes one size only
            return _reject_size(plan, graph, note, f"torch refuses another input size "
                                f"({reason_of(error)})")  # fmt: skip
    for backend, session in list(graph.sessions.items()):
        verdicts = [_verdict(session, x, ref, ranked)
                    for x, ref in zip(inputs, references, strict=True)]  # fmt: skip
        bad = next((i for i, v in enumerate(verdicts) if not v.ok), None)
        graph.verdicts[backend] = verdicts[0 if bad is None else bad]
        if bad is None:
            note(f"{backend}: the probe against torch passed, {verdicts[-1].words()}")
        elif bad == 1:  # right at the example's size, wrong at another: not a free-size graph
            return _reject_size(
                plan, graph, note, f"{backend} at another size: {verdicts[1].reason}"
            )
        else:
            del graph.sessions[backend]
            note(f"{backend}: the compiled graph disagrees with torch on the probe input "
                 f"({verdicts[0].reason}); it was dropped and torch serves instead")  # fmt: skip


def _verdict(session, x: torch.Tensor, reference: list[torch.Tensor], ranked: bool) -> Verdict:
    try:
        return compare(reference, session.run(x.numpy()), ranked)
    except Exception as error:  # noqa: BLE001 - a graph that cannot run is wrong too
        return Verdict(False, float("inf"), 0.0, f"it failed ({reason_of(error)})")


def _reject_size(plan: Plan, graph: Graph, note: Note, why: str) -> None:
    graph.sessions.clear()
    rejected = f"the graph cannot take any height and width ({why})"
    plan.store.update_meta(graph.key, {"rejected": rejected})
    note(f"{rejected}; a graph of the input's exact size serves")
    (graph.folder / GRAPH).unlink(missing_ok=True)


def calibration_digest(batches: Sequence[torch.Tensor]) -> str:
    h = hashlib.sha256()
    for b in batches:
        h.update(b.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _int8(plan: Plan, graph: Graph, note: Note) -> None:
    """Swap in int8 sessions that pass the top-1 gate; float32 stays where they do not."""
    from modelkit.runtime.backends.quantize import GATE, agreement, gate_words, quantize

    if not has_vnni():
        return note("int8 needs a CPU with VNNI (int8 dot products), which this one lacks; "
                    "float32 serves")  # fmt: skip
    if plan.output.kind not in RANKED[:1]:
        return note("int8 is checked by top-1 agreement, which needs class scores (the "
                    "'logits' output); float32 serves this output")  # fmt: skip
    path = graph.folder / f"model.int8.{calibration_digest(plan.calibration)}.onnx"
    if not path.is_file():
        try:
            plan.store.add_file(
                graph.key,
                path.name,
                lambda tmp: quantize(graph.folder / GRAPH, tmp, plan.calibration),
            )
            STATS["quantized"] += 1
        except Exception as error:  # noqa: BLE001 - the quantizer's failure: float32 serves
            return note(f"int8 quantization failed ({reason_of(error)}); float32 serves")
    sessions = load_sessions(plan, path, note)
    references = [torch_outputs(plan.module, b.detach().float())[0] for b in plan.calibration]
    for backend, session in sessions.items():
        got = [session.run(b.detach().float().numpy())[0] for b in plan.calibration]
        agree, total = agreement(references, got)
        note(f"{backend}: {gate_words(agree, total)}")
        if total and agree / total >= GATE and backend in graph.sessions:
            graph.sessions[backend] = session
            graph.int8.add(backend)
