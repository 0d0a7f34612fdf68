"""ResultCache: round trips, keys, and surviving corrupt entries and unwritable folders."""

import logging
import sqlite3

import numpy as np
import torch

import modelkit
from modelkit.runtime import result_cache as rc
from modelkit.runtime.result_cache import ResultCache, hash_data, result_key


def test_default_dir_outside_repo(monkeypatch, tmp_path):
    monkeypatch.delenv("MODELKIT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert rc.default_cache_dir() == tmp_path / "modelkit" / "results"
    monkeypatch.setenv("MODELKIT_CACHE_DIR", str(tmp_path / "x"))
    assert rc.default_cache_dir() == tmp_path / "x"


def test_hashes_and_keys(monkeypatch):
    a = np.arange(12, dtype=np.uint8).reshape(3, 2, 2)
    assert hash_data(a) == hash_data(a.copy())
    assert hash_data(a) != hash_data(a.astype(np.uint16))  # dtype counts
    assert hash_data(a) != hash_data(a.reshape(3, 4))  # shape counts
    assert hash_data(torch.from_numpy(a)) == hash_data(a)
    assert hash_data(b"abc") != hash_data(np.frombuffer(b"abc", np.uint8))
    k = result_key("predict", "h", {"model": "resnet18", "top_k": 5})
    assert k == result_key("predict", "h", {"top_k": 5, "model": "resnet18"})
    assert k != result_key("predict", "h", {"model": "resnet18", "top_k": 3})
    assert k != result_key("features", "h", {"model": "resnet18", "top_k": 5})
    monkeypatch.setattr(modelkit, "__version__", "9.9.9")
    assert k != result_key("predict", "h", {"model": "resnet18", "top_k": 5})


def test_round_trip_exact(tmp_path):
    cache = ResultCache(tmp_path / "c", size_mb=10)
    arrays = {"logits": np.random.default_rng(0).standard_normal((2, 10)).astype(np.float32)}
    assert cache.get("k") is None
    assert cache.set("k", {"labels": ["a", "b"], "x": 1.5}, arrays)
    meta, back = cache.get("k")
    assert meta == {"labels": ["a", "b"], "x": 1.5}
    np.testing.assert_array_equal(back["logits"], arrays["logits"])
    assert back["logits"].dtype == np.float32
    assert cache.errors == 0


def test_corrupt_entry_is_a_logged_miss(tmp_path, caplog):
    cache = ResultCache(tmp_path / "c", size_mb=10)
    cache.set("k", {"a": 1}, {"v": np.ones(3)})
    cache._open().set("k", b"not an npz at all")  # what a torn write or bit rot leaves
    with caplog.at_level(logging.WARNING, logger="modelkit.runtime.result_cache"):
        assert cache.get("k") is None
        assert cache.get("k") is None  # deleted: a plain miss now
        cache._open().set("k2", b"junk")
        assert cache.get("k2") is None
    assert cache.errors == 2
    assert len([r for r in caplog.records if "read failed" in r.message]) == 1  # logged once
    assert cache.set("k", {"a": 2}, {})  # and the cache still works
    assert cache.get("k")[0] == {"a": 2}


def test_unopenable_directory_is_a_logged_miss(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("a regular file, so no folder can be made under it")
    cache = ResultCache(blocker / "cache", size_mb=10)
    with caplog.at_level(logging.WARNING, logger="modelkit.runtime.result_cache"):
        assert cache.set("k", {"a": 1}, {}) is False
        assert cache.get("k") is None
    assert len([r for r in caplog.records if "open failed" in r.message]) == 1


def test_write_failure_is_a_logged_miss(tmp_path, caplog, monkeypatch):
    cache = ResultCache(tmp_path / "c", size_mb=10)
    disk = cache._open()

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(disk, "set", full)
    with caplog.at_level(logging.WARNING, logger="modelkit.runtime.result_cache"):
        assert cache.set("k", {"a": 1}, {}) is False
        assert cache.set("k", {"a": 1}, {}) is False
    assert len([r for r in caplog.records if "write failed" in r.message]) == 1


def test_size_bound(tmp_path):
    cache = ResultCache(tmp_path / "c", size_mb=1)
    assert cache._open().size_limit == 2**20
    volumes = []
    for i in range(8):  # 8 x 256 KiB > 1 MiB: diskcache culls old entries as it goes
        assert cache.set(f"k{i}", {}, {"v": np.full(2**16, i, dtype=np.float32)})
        volumes.append(cache._open().volume())
    assert max(volumes) <= 2**20
    assert len(cache._open()) < 8 and cache.get("k0") is None
