"""Device and precision selection on a CPU-only machine (CUDA/MPS presence mocked)."""

import pytest
import torch

from modelkit.errors import DeviceError, ModelkitError
from modelkit.runtime import device as dev


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "mps_available", lambda: False)


def test_auto_picks_cpu_without_gpu(no_gpu):
    assert dev.resolve_device("auto") == torch.device("cpu")
    assert dev.resolve_device(None) == torch.device("cpu")


def test_auto_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(dev, "mps_available", lambda: True)
    assert dev.resolve_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert dev.resolve_device("auto").type == "mps"


def test_cuda_without_cuda_is_a_clear_error(no_gpu):
    with pytest.raises(DeviceError, match="no usable NVIDIA GPU") as info:
        dev.resolve_device("cuda")
    assert isinstance(info.value, ModelkitError)
    with pytest.raises(DeviceError, match="MPS"):
        dev.resolve_device("mps")


def test_unknown_device_and_precision_are_refused(no_gpu):
    with pytest.raises(DeviceError, match="tpu"):
        dev.resolve_device("tpu")
    with pytest.raises(DeviceError, match="fp8"):
        dev.resolve_precision("fp8", torch.device("cpu"))


def test_precision_on_cpu():
    cpu = torch.device("cpu")
    assert dev.resolve_precision("fp32", cpu) is None
    assert dev.resolve_precision(None, cpu) is None
    assert dev.resolve_precision("bf16", cpu) is torch.bfloat16
    with pytest.raises(DeviceError, match="fp16"):
        dev.resolve_precision("fp16", cpu)
    assert dev.resolve_precision("fp16", torch.device("cuda")) is torch.float16


def test_bf16_autocast_runs_on_cpu():
    conv = torch.nn.Conv2d(3, 4, 3).eval()
    x = torch.randn(1, 3, 8, 8)
    with torch.inference_mode(), dev.autocast(torch.device("cpu"), torch.bfloat16):
        y = conv(x)
    assert y.dtype == torch.bfloat16
    with torch.inference_mode(), dev.autocast(torch.device("cpu"), None):
        assert conv(x).dtype == torch.float32
    torch.testing.assert_close(y.float(), conv(x).detach(), atol=0.1, rtol=0.05)


def test_cpu_threads(monkeypatch):
    monkeypatch.setenv("MODELKIT_CPU_THREADS", "3")
    assert dev.cpu_thread_count() == 3
    monkeypatch.delenv("MODELKIT_CPU_THREADS")
    monkeypatch.setattr(dev.os, "cpu_count", lambda: 64)
    monkeypatch.setattr(dev.os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert dev.cpu_thread_count() == dev.MAX_CPU_THREADS
    assert dev.configure_cpu_threads() == torch.get_num_threads() >= 1


def test_oom_detection():
    assert dev.is_oom(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert not dev.is_oom(RuntimeError("shape mismatch"))
    assert not dev.is_oom(ValueError("out of memory"))
