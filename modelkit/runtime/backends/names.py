"""The backend setting: its names, its default (``MODELKIT_BACKEND``), and which runtimes this
machine has installed. Nothing here imports a runtime: ``find_spec`` only looks."""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os

from modelkit.errors import ConfigError

BACKENDS = ("auto", "torch", "onnxruntime", "openvino")
COMPILED = ("onnxruntime", "openvino")  # the backends that serve a compiled graph
PRECISIONS = ("fp32", "int8")
ENV = "MODELKIT_BACKEND"
# the Python module each compiled backend needs (and the PyPI package that brings it)
MODULES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}


def check_backend(name: str | None) -> str:
    """``name`` in lower case when it is a backend, else a ConfigError that lists them.

    Args:
        name: a backend name; None or "" means the default (``default_backend()``).
    Returns:
        One of ``BACKENDS``.
    """
    if name is None or str(name).strip() == "":
        return default_backend()
    value = str(name).strip().lower()
    if value not in BACKENDS:
        raise ConfigError(
            f"backend={name!r} is not known; use one of {', '.join(BACKENDS)} ('auto' picks the "
            "fastest on this machine, 'torch' runs the model as it is)."
        )
    return value


def default_backend() -> str:
    """The backend named by ``MODELKIT_BACKEND`` ("auto" when unset).

    Returns:
        One of ``BACKENDS``.
    """
    value = os.environ.get(ENV, "").strip().lower() or "auto"
    if value not in BACKENDS:
        raise ConfigError(
            f"The environment variable {ENV}={value!r} is not a backend; set it to one of "
            f"{', '.join(BACKENDS)}, or unset it."
        )
    return value


def check_precision(precision: str | None) -> str:
    """``"fp32"`` or ``"int8"`` (None means fp32); anything else is a ConfigError."""
    value = str(precision or "fp32").strip().lower()
    if value not in PRECISIONS:
        raise ConfigError(
            f"precision={precision!r} cannot run on a compiled backend; use 'fp32' (exact) or "
            "'int8' (faster on CPUs with VNNI, checked against fp32)."
        )
    return value


def installed(backend: str) -> bool:
    """Whether the runtime behind ``backend`` can be imported here ("torch" always can)."""
    module = MODULES.get(backend)
    return module is None or importlib.util.find_spec(module) is not None


def available_backends() -> tuple[str, ...]:
    """The compiled backends installed on this machine, in ``COMPILED`` order.

    Returns:
        A subset of ``COMPILED``; empty when neither runtime is installed (torch serves).
    """
    ok = importlib.util.find_spec("onnx") is not None
    return tuple(b for b in COMPILED if ok and installed(b))


def require(backend: str) -> None:
    """A ConfigError in words when an explicit compiled backend is not installed."""
    if backend in COMPILED and backend not in available_backends():
        missing = [p for p in ("onnx", MODULES[backend]) if importlib.util.find_spec(p) is None]
        raise ConfigError(
            f"backend={backend!r} needs the Python package(s) {', '.join(missing)}, which are "
            f"not installed; run `pip install {' '.join(missing)}` (requirements.txt lists "
            "them), or choose backend='auto' or 'torch'."
        )


@functools.cache
def versions() -> dict[str, str]:
    """The versions a compiled graph depends on ("none" for a package that is missing)."""
    out = {}
    for package in ("torch", "onnx", "onnxruntime", "openvino"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = "none"
    return out


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's instruction-set flags (``/proc/cpuinfo``; empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def has_vnni() -> bool:
    """Whether this CPU has int8 dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX)."""
    flags = cpu_flags()
    return bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})
