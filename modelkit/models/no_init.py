"""Building models without a random initialisation.

Two switches on ``nn.Module``, each acting only in the thread that turned it on (other threads,
building real models at the same time, see torch's own behaviour):

- ``params_on_meta()``: new parameters go to the meta device, so building costs no memory and
  no random init. ``torch.device("meta")`` cannot do this: RegNet reads tensor values while it
  builds, and buffers (position indices, masks) must stay real. With ``real_buffers=True`` a
  non-persistent buffer computed from meta tensors (Swin's attention masks: no checkpoint will
  fill it) stops the build at once with ``NeedsRealInit``.
- ``loads_assigning(prepare)``: the next ``load_state_dict`` call hands the state dict to
  ``prepare(model, state_dict)`` and loads what it returns with ``assign=True``, so the
  checkpoint's tensors become the parameters (meta ones included) instead of being copied.

Together they let a library's own pretrained loader (timm's: its file readers and checkpoint
filters) fill a model that was never initialised.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import contextmanager

from torch import nn


class _ThreadPatch:
    """One ``nn.Module`` method replaced while any thread needs it; ``value`` is per thread."""

    def __init__(self, name: str):
        self.name = name
        self.original = getattr(nn.Module, name)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._users = 0

    @property
    def value(self):
        return getattr(self._local, "value", None)

    @value.setter
    def value(self, value) -> None:
        self._local.value = value

    @contextmanager
    def on(self, replacement, value):
        with self._lock:
            self._users += 1
            setattr(nn.Module, self.name, replacement)
        previous, self.value = self.value, value
        try:
            yield
        finally:
            self.value = previous
            with self._lock:
                self._users -= 1
                if not self._users:
                    setattr(nn.Module, self.name, self.original)


class NeedsRealInit(Exception):
    """This model cannot be built without init: it computes a buffer from its parameters."""


_REGISTER = _ThreadPatch("register_parameter")
_BUFFER = _ThreadPatch("register_buffer")
_LOAD = _ThreadPatch("load_state_dict")


def _register_on_meta(self, name, param):
    _REGISTER.original(self, name, param)
    if param is not None and _REGISTER.value and not param.is_meta:  # a meta one may be tied
        self._parameters[name] = nn.Parameter(param.to("meta"), param.requires_grad)


def _register_real_buffer(self, name, tensor, persistent=True):
    if _BUFFER.value and _REGISTER.value and not persistent and getattr(tensor, "is_meta", False):
        raise NeedsRealInit(f"{type(self).__name__}.{name} is computed from its parameters")
    _BUFFER.original(self, name, tensor, persistent)


def _load_prepared(self, state_dict, strict=True, assign=False):
    prepare = _LOAD.value
    if prepare is None:
        return _LOAD.original(self, state_dict, strict=strict, assign=assign)
    _LOAD.value = None  # only the first load (the whole model's) is taken over
    metadata = getattr(state_dict, "_metadata", None)  # module versions, as torch keeps them
    state_dict = OrderedDict(prepare(self, dict(state_dict)))
    if metadata is not None:
        state_dict._metadata = metadata
    ties = _ties(self)
    on_meta, _REGISTER.value = _REGISTER.value, None  # assigned parameters stay where they are
    try:
        result = _LOAD.original(self, state_dict, strict=True, assign=True)
        _tie_again(self, ties)
        return result
    finally:
        _REGISTER.value = on_meta


def _ties(model: nn.Module) -> list[list[str]]:
    """Names under which one tensor appears. A module shared whole (CoaT's position encodings)
    stays shared through an assigning load; a Parameter registered in two modules (tied
    weights) would become two tensors, so the names are tied again after it."""
    names: dict[int, list[str]] = {}
    for name, tensor in (*model.named_parameters(remove_duplicate=False),
                         *model.named_buffers(remove_duplicate=False)):  # fmt: skip
        names.setdefault(id(tensor), []).append(name)
    return [group for group in names.values() if len(group) > 1]


def _tie_again(model: nn.Module, ties: list[list[str]]) -> None:
    for first, *others in ties:
        owner, _, attr = first.rpartition(".")
        tensor = getattr(model.get_submodule(owner), attr)
        for name in others:
            owner, _, attr = name.rpartition(".")
            module = model.get_submodule(owner)
            table = module._parameters if attr in module._parameters else module._buffers
            table[attr] = tensor


@contextmanager
def params_on_meta(real_buffers: bool = False):
    """Within: parameters created in this thread live on the meta device."""
    with _REGISTER.on(_register_on_meta, True), _BUFFER.on(_register_real_buffer, real_buffers):
        yield


def loads_assigning(prepare):
    """Within: this thread's next ``load_state_dict`` loads ``prepare(model, state_dict)`` with
    ``assign=True`` (prepare may raise to stop the load)."""
    return _LOAD.on(_load_prepared, prepare)


def has_meta_tensors(model: nn.Module) -> bool:
    """Whether any parameter or buffer was left on the meta device (never loaded)."""
    return any(t.is_meta for t in (*model.parameters(), *model.buffers()))
