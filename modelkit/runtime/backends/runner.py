"""Runner: a model's output served by torch or by a compiled graph, never wrong, never slower.

- ``"torch"`` runs the model as it is. So does every call on a non-CPU device (CUDA stays on
  torch), with an input that needs gradients, or while no checked graph is ready.
- ``"onnxruntime"`` / ``"openvino"`` compile on first use (synchronously) and serve the graph
  once it has passed the probe; an export or probe failure leaves torch serving, with a note.
- ``"auto"`` answers with torch while the background worker compiles, probes, then times torch
  and each runtime on this machine for that batch size; the fastest serves from then on, and the
  choice is kept next to the graph so a restart knows it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from modelkit.errors import ConfigError, ModelkitError
from modelkit.runtime.backends.choose import WORKER, describe, pick, time_candidates
from modelkit.runtime.backends.graphs import Graph, Plan, build_graph, reason_of
from modelkit.runtime.backends.names import (
    available_backends,
    check_backend,
    check_precision,
    require,
)
from modelkit.runtime.backends.outputs import OutputModule, parse_output, restore
from modelkit.runtime.backends.store import GraphStore, weights_fingerprint

MISSING = object()


class Runner:
    """Callable on a CPU tensor (N, C, H, W); returns what torch would (a tensor or a list).

    ``backend`` names what served the last call; ``notes`` say, in plain words, why torch
    serves, what the probe measured and what "auto" chose; ``ready`` is set when the first
    background job (compile, probe, timing) has finished; ``wait()`` waits for all of them.
    """

    def __init__(self, model: nn.Module, *, model_id: str, output: str, backend: str,
                 precision: str = "fp32", calibration: Sequence[torch.Tensor] = (),
                 store: GraphStore | None = None) -> None:  # fmt: skip
        self.output = parse_output(output)
        self.requested = check_backend(backend)
        self.precision = check_precision(precision)
        if self.precision == "int8" and not calibration:
            raise ConfigError(
                "precision='int8' needs calibration images (a few batches of real, "
                "preprocessed images) to set the int8 ranges; give them, or use 'fp32'."
            )
        if self.requested != "auto":
            require(self.requested)
        self.model_id = model_id
        self.backend = "torch"
        self.notes: list[str] = []
        self.ready = threading.Event()
        self._module = OutputModule(model, self.output)
        self._device = next((t.device for t in model.parameters()), torch.device("cpu"))
        self._threads = torch.get_num_threads()
        self._calibration = list(calibration)
        self._store = store
        self._plan: Plan | None = None
        self._graphs: dict[object, Graph | None] = {}  # input slot -> graph (None: torch)
        self._dynamic: Graph | None = None  # a free-size graph serves every height and width
        self._choices: dict[tuple, str] = {}  # (slot, batch) -> what "auto" picked
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._pending: set = set()
        self._idle = threading.Condition(self._lock)

    # --- serving ------------------------------------------------------------------------------
    def __call__(self, x: torch.Tensor):
        """The output for ``x``, from the backend that serves it (see the class docstring)."""
        name, graph = self._route(x)
        if graph is not None and name != "torch":
            try:
                arrays = graph.sessions[name].run(np.ascontiguousarray(x.detach().float().numpy()))
                self.backend = name
                return restore(arrays, graph.like_list)
            except Exception as error:  # noqa: BLE001 - torch answers; the runtime is dropped
                with self._lock:
                    graph.sessions.pop(name, None)
                self.note(f"{name} failed on an input of shape {tuple(x.shape)} "
                          f"({reason_of(error)}); it was dropped and torch serves")  # fmt: skip
        self.backend = "torch"
        return self._module(x)

    def _route(self, x: torch.Tensor) -> tuple[str, Graph | None]:
        if self.requested == "torch":
            return "torch", None
        if self._device.type != "cpu" or x.device.type != "cpu":
            self.note(f"the model runs on {self._device.type.upper()}: torch serves there "
                      "(compiled graphs are for the CPU)")  # fmt: skip
            return "torch", None
        if x.requires_grad:
            return "torch", None
        if self.requested != "auto":
            graph = self._graph_now(x)
            if graph is None or self.requested not in graph.sessions:
                return "torch", None
            return self.requested, graph
        return self._auto(x)

    def _slot(self, x: torch.Tensor) -> object:
        return "dynamic" if self._dynamic is not None else tuple(x.shape[1:])

    def _graph_now(self, x: torch.Tensor) -> Graph | None:
        with self._build_lock:
            slot = self._slot(x)
            if slot not in self._graphs:
                try:
                    self._build(slot, x)
                except ModelkitError:
                    raise  # the model refuses this input: torch would say the same
                except Exception as error:  # noqa: BLE001 - an optimisation: torch serves
                    self.note(f"the compiled graph could not be made ({reason_of(error)}); "
                              "torch serves")  # fmt: skip
                    self._graphs[slot] = None
            return self._graphs[slot]

    def _auto(self, x: torch.Tensor) -> tuple[str, Graph | None]:
        slot, batch = self._slot(x), x.shape[0]
        graph = self._graphs.get(slot, MISSING)
        if graph is MISSING:
            example = x[:1].detach().clone()  # the caller may reuse x's memory meanwhile
            self._schedule(("build", slot), lambda: self._build_and_time(slot, example, batch))
            return "torch", None
        if graph is None:
            return "torch", None
        choice = self._choices.get((slot, batch))
        if choice is None:
            shape = tuple(x.shape)
            self._schedule(("time", slot, batch), lambda: self._time(graph, slot, shape))
            near = [b for s, b in self._choices if s == slot]
            best = min(near, key=lambda b: abs(b - batch), default=None)
            choice = self._choices[(slot, best)] if best is not None else "torch"
        return (choice if choice in graph.sessions else "torch"), graph

    # --- building and timing -----------------------------------------------------------------
    def _make_plan(self) -> Plan:
        if self._plan is None:
            backends = available_backends() if self.requested == "auto" else (self.requested,)
            if not backends:
                self.note("no compiled runtime (onnxruntime, openvino) is installed; torch serves")
            self._plan = Plan(self._module, self.model_id, self.output,
                              weights_fingerprint(self._module.model), backends, self._threads,
                              self._store or GraphStore(), self.precision,
                              self._calibration)  # fmt: skip
        return self._plan

    def _build(self, slot: object, x: torch.Tensor) -> Graph | None:
        plan = self._make_plan()
        graph = build_graph(plan, x[:1].detach().float(), self.note) if plan.backends else None
        with self._lock:
            if graph is not None and graph.spatial == "dynamic":
                self._dynamic, slot = graph, "dynamic"
            self._graphs[slot] = graph
            if graph is not None:  # what "auto" chose before, on this machine
                for name, choice in plan.store.choices(graph.key).items():
                    numbers = [int(n) for n in re.findall(r"\d+", name)]
                    if numbers[1:2] == [self._threads] and isinstance(choice, dict):
                        self._choices[(slot, numbers[0])] = str(choice.get("backend"))
        return graph

    def _build_and_time(self, slot: object, example: torch.Tensor, batch: int) -> None:
        graph = self._build(slot, example)
        if graph is not None:
            self._time(graph, self._slot(example), (batch, *example.shape[1:]))

    def _time(self, graph: Graph, slot: object, shape: tuple[int, ...]) -> None:
        batch = shape[0]
        if (slot, batch) in self._choices or not graph.sessions:
            return
        probe = torch.randn(shape, generator=torch.Generator().manual_seed(1))
        array = probe.numpy()

        def torch_call() -> None:
            with torch.inference_mode():  # as the run path calls it
                self._module(probe)

        calls = {"torch": torch_call}
        calls |= {n: (lambda s=s: s.run(array)) for n, s in graph.sessions.items()}
        seconds = time_candidates(calls, stop=WORKER.closing)
        chosen = pick(seconds)
        with self._lock:
            self._choices[(slot, batch)] = chosen
        self._make_plan().store.record_choice(graph.key, f"batch {batch}, {self._threads} threads",
            {"backend": chosen, "ms_per_image": {n: round(s * 1e3 / batch, 3)
                                                 for n, s in seconds.items()}})  # fmt: skip
        self.note(describe(seconds, batch, chosen))

    def _schedule(self, job_id: tuple, job) -> None:
        with self._lock:
            if job_id in self._pending:
                return
            self._pending.add(job_id)
        if job_id[0] == "build":
            self.note("auto: torch answers while the compiled graph is made in the background")

        def run() -> None:
            try:
                job()
            except Exception as error:  # noqa: BLE001 - torch goes on serving
                self.note(f"the background compile failed ({reason_of(error)}); torch serves")
                with self._lock:
                    self._graphs.setdefault(job_id[1], None)
            finally:
                with self._lock:
                    self._pending.discard(job_id)
                    self._idle.notify_all()
                self.ready.set()

        WORKER.submit(run)

    # --- reporting ----------------------------------------------------------------------------
    def note(self, text: str) -> None:
        """Add a plain-words note (each once)."""
        if text not in self.notes:
            self.notes.append(text)

    def prepare(self, example: torch.Tensor) -> None:
        """Get the graph for inputs like ``example`` ready: now for an explicit backend, in
        the background for "auto" (a no-op for torch and off the CPU)."""
        if self.requested == "auto":
            self._route(example)
        elif self.requested != "torch" and self._device.type == "cpu":
            self._graph_now(example)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no background job of this runner is pending; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._pending, timeout)


def compiled_forward(model: nn.Module, *, model_id: str, output: str, example: torch.Tensor,
                     backend: str | None = None, precision: str = "fp32",
                     calibration: Sequence[torch.Tensor] = (),
                     store: GraphStore | None = None) -> Runner:  # fmt: skip
    """The runner of ``output`` for ``model`` (one per model, output, backend and precision).

    Args:
        model: a built modelkit model in eval mode.
        model_id: what identifies the model's settings (e.g. its model key as text); the graph's
            key adds a fingerprint of the weights, so two random draws never share a graph.
        output: "logits", "pooled", "trunk" or "features:<i,j,...>" (see outputs.py).
        example: an (N, C, H, W) batch like the real inputs; its graph is made now (explicit
            backend) or starts in the background ("auto").
        backend: one of BACKENDS; None means MODELKIT_BACKEND's value (default "auto").
        precision: "fp32", or "int8" (static quantization, gated on top-1 agreement).
        calibration: batches of real preprocessed images, for int8 only (also its probe set).
        store: where graphs are kept (default: ``<result cache>/compiled``).
    Returns:
        A Runner; the same one for the same model object and arguments.
    """
    name, prec = check_backend(backend), check_precision(precision)
    key = (model_id, parse_output(output).name, name, prec)
    record = model.__dict__.get("modelkit")  # a model modelkit built keeps them in its record
    runners = record.runners if record is not None else model.__dict__.setdefault("runners", {})
    if key not in runners:
        runners[key] = Runner(model, model_id=model_id, output=output, backend=name,
                              precision=prec, calibration=calibration, store=store)  # fmt: skip
    runner = runners[key]
    try:
        runner.prepare(example)
    except Exception as error:  # noqa: BLE001 - preparing is an optimisation; torch still serves
        runner.note(f"the compiled graph could not be prepared ({reason_of(error)}); torch serves")
    return runner
