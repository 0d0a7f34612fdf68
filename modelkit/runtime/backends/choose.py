"""Auto: time the candidates on this machine, for one model and batch size, and keep the
fastest; plus the one background worker that compiles and times, one job at a time."""

from __future__ import annotations

import atexit
import logging
import queue
import statistics
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

ROUNDS = 5  # timed rounds per candidate (after one warm-up), fewer when a round is slow
BUDGET_S = 20.0  # rough cap on one timing job


def time_candidates(candidates: dict[str, Callable[[], object]], rounds: int = ROUNDS,
                    budget_s: float = BUDGET_S,
                    stop: threading.Event | None = None) -> dict[str, float]:  # fmt: skip
    """Median seconds per call of each candidate, run interleaved (round by round, in turn).

    Args:
        candidates: name -> a call doing one whole forward pass.
        rounds: timed rounds (at least 2 are run, whatever the budget).
        budget_s: stop adding rounds once this much time has gone.
        stop: set when the process is ending: no round after the current one.
    Returns:
        name -> median seconds of one call.
    """
    for run in candidates.values():  # warm-up: first calls allocate and tune
        run()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    started = time.perf_counter()
    for i in range(rounds):
        order = list(candidates) if i % 2 == 0 else list(reversed(candidates))
        for name in order:
            t0 = time.perf_counter()
            candidates[name]()
            times[name].append(time.perf_counter() - t0)
        if i >= 1 and (time.perf_counter() - started > budget_s or (stop and stop.is_set())):
            break
    return {name: statistics.median(t) for name, t in times.items()}


MARGIN = 0.05  # a runtime serves only when it beats torch by this share (else: noise)


def pick(seconds: dict[str, float]) -> str:
    """The fastest candidate, if it beats torch by ``MARGIN``; else torch."""
    fastest = min(seconds, key=lambda name: (seconds[name], name != "torch"))
    if "torch" in seconds and seconds[fastest] > seconds["torch"] * (1 - MARGIN):
        return "torch"
    return fastest


def describe(seconds: dict[str, float], batch: int, chosen: str) -> str:
    """One line for the notes: each candidate's ms per image and the choice."""
    parts = ", ".join(f"{name} {seconds[name] * 1e3 / batch:.1f}"
                      for name in sorted(seconds, key=seconds.get))  # fmt: skip
    return f"auto timed batch {batch} (ms per image): {parts}; {chosen} serves"


class Worker:
    """One daemon thread running jobs in order: compiling never runs two at a time. When the
    process ends, the jobs still waiting are dropped and the one running is waited for (a
    runtime's own threads torn down mid-compile abort the process)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.closing = threading.Event()

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self.closing.is_set():
                return
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="modelkit-compile",
                                                daemon=True)  # fmt: skip
                self._thread.start()
                atexit.register(self.close)
        self._jobs.put(job)

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None or self.closing.is_set():
                return
            try:
                job()
            except Exception:  # noqa: BLE001 - a job reports its own failures; never die
                log.exception("A background compile job failed")

    def close(self, timeout_s: float = 60.0) -> None:
        """Drop the waiting jobs, let the running one end, wait for it (at most ``timeout_s``)."""
        self.closing.set()
        self._jobs.put(None)
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout_s)


WORKER = Worker()
