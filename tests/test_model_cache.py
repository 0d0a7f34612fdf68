"""ModelCache with a fake builder: hits, single-flight, LRU eviction within a byte budget."""

import gc
import threading
import time
import weakref

import pytest
import torch
from torch import nn

from modelkit.runtime.model_cache import ModelCache, ModelKey, model_bytes


def key(name: str, **options) -> ModelKey:
    """A cache key for a fake builder: its name and create_model-style options."""
    return ModelKey(name, tuple(options.items()))


class CountingBuilder:
    """Builds nn.Linear(n, n) for name 'lin<n>' (n*n + n float32 = known bytes); counts calls."""

    def __init__(self, delay: float = 0.0):
        self.delay, self.calls, self.lock = delay, [], threading.Lock()

    def __call__(self, name, **kwargs):
        with self.lock:
            self.calls.append((name, kwargs))
        time.sleep(self.delay)
        if name == "boom":
            raise RuntimeError("build failed")
        n = int(name.removeprefix("lin"))
        return nn.Linear(n, n)


def nbytes(n: int) -> int:
    return (n * n + n) * 4


def test_model_bytes_counts_params_and_buffers():
    bn = nn.BatchNorm2d(8)  # 2*8 params, 2*8 float buffers + 1 int64 counter
    assert model_bytes(bn) == 16 * 4 + 16 * 4 + 8
    assert model_bytes(nn.Linear(10, 10)) == nbytes(10)


def test_hit_and_miss_and_key_settings():
    builder = CountingBuilder()
    cache = ModelCache(builder=builder, max_bytes=10**6, max_models=4)
    m1, hit1 = cache.get(key("lin4"))
    m2, hit2 = cache.get(key("lin4"))
    assert (hit1, hit2) == (False, True) and m1 is m2
    assert not m1.training  # eval mode
    m3, hit3 = cache.get(key("lin4", num_classes=7))  # other settings: other model
    assert not hit3 and m3 is not m1
    assert len(builder.calls) == 2 and builder.calls[1][1]["num_classes"] == 7
    assert "out_indices" not in builder.calls[0][1]  # only meaningful for features_only
    cache.get(key("lin4", features_only=True, out_indices=(1, 2)))
    assert builder.calls[2][1]["out_indices"] == (1, 2)
    assert cache.total_bytes == nbytes(4) * 3


def test_single_flight_builds_once():
    builder = CountingBuilder(delay=0.3)
    cache = ModelCache(builder=builder, max_bytes=10**6, max_models=4)
    results, barrier = [], threading.Barrier(8)

    def ask():
        barrier.wait()
        results.append(cache.get(key("lin8")))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builder.calls) == 1 and cache.builds == 1
    assert len({id(m) for m, _ in results}) == 1
    assert all(not hit for _, hit in results)  # everyone waited for the one build


def test_different_keys_build_in_parallel():
    # each build waits until all four builds are inside the builder at once: with a lock held
    # while building, the barrier would break (BrokenBarrierError) instead of opening
    inside = threading.Barrier(4, timeout=10)

    def builder(name, **kwargs):
        inside.wait()
        return nn.Linear(2, 2)

    cache = ModelCache(builder=builder, max_bytes=10**6, max_models=8)
    errors = []

    def ask(n):
        try:
            cache.get(key(f"lin{n}"))
        except threading.BrokenBarrierError as e:
            errors.append(e)

    threads = [threading.Thread(target=ask, args=(n,)) for n in (2, 3, 4, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(cache) == 4


def test_failed_build_reaches_every_waiter_and_is_not_cached():
    builder = CountingBuilder(delay=0.2)
    cache = ModelCache(builder=builder, max_bytes=10**6)
    errors = []

    def ask():
        try:
            cache.get(key("boom"))
        except RuntimeError as e:
            errors.append(e)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 4 and len(builder.calls) == 1 and len(cache) == 0
    with pytest.raises(RuntimeError):
        cache.get(key("boom"))
    assert len(builder.calls) == 2  # a failure is retried next time


def test_lru_eviction_within_budget_frees_memory():
    builder = CountingBuilder()
    cache = ModelCache(builder=builder, max_bytes=nbytes(100) * 2 + 10, max_models=10)
    a, _ = cache.get(key("lin100"))
    ref_a = weakref.ref(a)
    del a
    cache.get(key("lin100", num_classes=2))
    cache.peek(key("lin100"))  # touch a: b becomes least recently used
    c, _ = cache.get(key("lin100", num_classes=3))
    keys = cache.keys()
    assert key("lin100", num_classes=2) not in keys
    assert keys == [key("lin100"), key("lin100", num_classes=3)]
    assert cache.total_bytes == nbytes(100) * 2 <= cache.max_bytes
    assert ref_a() is not None  # still cached
    cache.get(key("lin100", num_classes=4))  # evicts a (LRU now)
    gc.collect()
    assert ref_a() is None  # evicted model really gone
    assert c is not None


def test_count_limit_and_clear():
    cache = ModelCache(builder=CountingBuilder(), max_bytes=10**9, max_models=2)
    refs = []
    for n in (2, 3, 4):
        m, _ = cache.get(key(f"lin{n}"))
        refs.append(weakref.ref(m))
        del m
    assert len(cache) == 2 and refs[0]() is None
    cache.clear()
    assert len(cache) == 0 and all(r() is None for r in refs)


def test_model_larger_than_budget_runs_once_and_is_not_kept():
    builder = CountingBuilder()
    cache = ModelCache(builder=builder, max_bytes=nbytes(10), max_models=4)
    small, _ = cache.get(key("lin10"))
    big, hit = cache.get(key("lin50"))
    assert not hit and isinstance(big, nn.Linear)
    assert big(torch.ones(1, 50)).shape == (1, 50)
    assert cache.keys() == [key("lin10")]  # big not kept, small not evicted for it
    ref = weakref.ref(big)
    del big
    gc.collect()
    assert ref() is None
    cache.get(key("lin50"))
    assert len(builder.calls) == 3


def test_budget_from_environment(monkeypatch):
    monkeypatch.setenv("MODELKIT_MODEL_CACHE_MB", "3")
    monkeypatch.setenv("MODELKIT_MODEL_CACHE_COUNT", "5")
    cache = ModelCache(builder=CountingBuilder())
    assert cache.max_bytes == 3 * 2**20 and cache.max_models == 5
