"""Load: 16 gradio_client sessions at once against the running app, mixing models, images and
endpoints, for a bounded time. No request may fail, every answer must equal the single-request
answer (computed here with modelkit.runtime.engine, one call at a time), and the server's
memory must stay within the model cache budget plus the overhead it had before the load.

The models are the three EfficientNet-Lites with their real (shipped) weights: deterministic, so
"equal" is well defined even when a model is evicted and rebuilt. Their adapted variants
(in_chans 13, 7, 1) make 12 distinct models of 18-25 MB each, so a 48 MB budget forces eviction and
rebuilding all through the run.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio_client")
pytest.importorskip("psutil")
from app_server import ASSETS, call, start_app  # noqa: E402
from gradio_client import Client  # noqa: E402

pytestmark = pytest.mark.slow  # 16 sessions for 15 s

SESSIONS = 16
LOAD_SECONDS = 15  # new requests start until then; the ones in flight finish
BUDGET_MB = 48  # MODELKIT_MODEL_CACHE_MB for the server: two or three of these models at once
# What the server may use beyond its footprint after a warm-up and the model budget: one forward
# pass per concurrent request (activations, preprocessing of a 13-band TIFF), a model being built
# (checkpoint + weights) or still in use after its eviction (two requests run at once), allocator
# arenas of the worker threads, and queued uploads and downloads.
ALLOWANCE_MB = 300
CONCURRENCY = 2  # MODELKIT_CONCURRENCY: two requests run model work at once (default is one)

MODELS = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
CASES = [  # (asset, in_chans, channels)
    ("chelsea.png", None, ""),
    ("sentinel2_13band.tif", 13, ""),
    ("sentinel2_13band.tif", None, "3, 2, 1"),
    ("landsat8_7band.npy", 7, ""),
    ("sentinel2_b08_nir_16bit.png", 1, ""),
]
COMBOS = [(m, *case) for m in MODELS for case in CASES]
LEVELS = 5  # every EfficientNet-Lite has five feature levels


def reference(combos, out: dict) -> None:
    """Fill ``out``: (model, asset, in_chans, channels) -> (probabilities of all classes, labels,
    level maps), each from one engine call on its own, no result cache, as the app asks for it;
    and "models", "models_mb": how many distinct models there are and their size."""
    import torch

    from modelkit.images.read import read_image
    from modelkit.runtime import engine
    from modelkit.runtime.model_cache import ModelCache
    from modelkit.runtime.settings import RunSettings

    cache = ModelCache(max_bytes=2**40, max_models=len(combos))
    from modelkit.runtime.device import configure_cpu_threads

    threads = configure_cpu_threads()  # (the engine's once-per-process setting, done now)
    torch.set_num_threads(1)  # this runs while the server starts: two processes on two cores
    try:
        for model, asset, in_chans, channels in combos:
            image = read_image((ASSETS / asset).read_bytes(), asset)
            settings = RunSettings.from_form(
                {"model": model, "pretrained": True, "in_chans": in_chans, "channels": channels}
            )
            settings = settings.follow(image)  # as the page does
            kw = dict(use_result_cache=False, model_cache=cache)
            p = engine.predict(image, settings, top_k=1000, **kw)
            f = engine.features(image, settings, **kw)
            probs = np.zeros(len(p.logits))
            probs[p.indices] = p.probabilities
            labels = dict(zip(p.indices, p.labels, strict=True))
            maps = [lv["array"] for lv in f.levels]
            out[model, asset, in_chans, channels] = (probs, labels, maps)
    finally:
        torch.set_num_threads(threads)
    out["models"], out["models_mb"] = len(cache), cache.total_bytes / 2**20


def warm_up(url: str) -> None:
    """One request per reader and endpoint, so that modules loaded on first use (tifffile,
    imagecodecs, NPZ writing) are in the baseline, not in what the load is charged with."""
    client = Client(url, verbose=False)
    for i, (asset, in_chans, channels) in enumerate(CASES):
        api = "/predict" if i % 2 else "/features"
        call(client, asset, api, in_chans=in_chans, channels=channels, out_indices="0")


def worker(url: str, seed: int, deadline: float, done: list, failures: list) -> None:
    rng = random.Random(seed)
    client = Client(url, verbose=False)
    while time.monotonic() < deadline:
        combo = rng.choice(COMBOS)
        model, asset, in_chans, channels = combo
        form = dict(model=model, in_chans=in_chans, channels=channels)
        try:
            if rng.random() < 0.5:
                top_k = rng.randint(1, 20)
                result = call(client, asset, "/predict", top_k=top_k, **form)
                done.append((combo, "predict", top_k, result))
            else:
                picked = sorted(rng.sample(range(LEVELS), rng.randint(1, 3)))
                levels = ", ".join(map(str, picked))
                summary, npz = call(client, asset, "/features", out_indices=levels, **form)
                with np.load(npz, allow_pickle=False) as arrays:
                    maps = {k: arrays[k] for k in arrays.files}
                done.append((combo, "features", picked, (summary, maps)))
        except Exception as exc:  # noqa: BLE001 - every failure is reported by the test
            failures.append((combo, repr(exc)[:300]))


def sample_rss(server, stop: threading.Event, samples: list) -> None:
    while not stop.is_set():
        samples.append(server.rss())
        stop.wait(0.2)


def check_predict(ref, top_k: int, result: dict) -> None:
    probs, labels, _ = ref
    rows = result["predictions"]
    assert len(rows) == top_k
    expected = np.sort(probs)[::-1][:top_k]
    got = np.array([r["probability"] for r in rows])
    np.testing.assert_allclose(got, expected, atol=2e-5)  # the app rounds to 6 decimals
    for r in rows:  # the classes themselves (ties make only the order within them free)
        assert abs(probs[r["index"]] - r["probability"]) <= 2e-5, r
        assert r["label"] == labels[r["index"]]


def check_features(ref, picked: list[int], result) -> None:
    summary, maps = result
    assert [lv["index"] for lv in summary["levels"]] == picked
    assert sorted(maps) == sorted(f"level_{i}" for i in picked)
    for i in picked:
        expected = ref[2][i]
        assert list(maps[f"level_{i}"].shape[-3:]) == list(expected.shape)
        # both went through float16; a different thread count may round one step apart
        np.testing.assert_allclose(maps[f"level_{i}"], expected, rtol=1e-2, atol=1e-2)


def test_sixteen_sessions_get_the_single_request_answers(tmp_path: Path):
    env = {"MODELKIT_MODEL_CACHE_MB": str(BUDGET_MB), "MODELKIT_CONCURRENCY": str(CONCURRENCY)}
    refs: dict = {}
    computing = threading.Thread(target=reference, args=(COMBOS, refs))
    computing.start()  # while the server starts
    server = start_app(tmp_path, env=env)
    try:
        computing.join()
        assert len(refs) == len(COMBOS) + 2, "the reference answers failed (see the log)"
        # 12 distinct models that do not fit the budget together: the run must evict and rebuild
        assert refs["models"] == 12 and refs["models_mb"] > 3 * BUDGET_MB

        warm_up(server.url)
        baseline = server.rss()
        samples: list[int] = []
        stop = threading.Event()
        sampler = threading.Thread(target=sample_rss, args=(server, stop, samples), daemon=True)
        sampler.start()
        done, failures = [], []
        started = time.monotonic()
        deadline = started + LOAD_SECONDS
        threads = [
            threading.Thread(target=worker, args=(server.url, s, deadline, done, failures))
            for s in range(SESSIONS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=LOAD_SECONDS + 120)
        elapsed = time.monotonic() - started
        stop.set()
        sampler.join()
        assert not any(t.is_alive() for t in threads), "a session hung"
    finally:
        server.stop()

    peak = max(samples)
    kinds = {kind for _, kind, _, _ in done}
    print(
        f"\nload: {len(done)} requests ({sum(k == 'predict' for _, k, _, _ in done)} predict) "
        f"from {SESSIONS} sessions in {elapsed:.1f} s, {len(failures)} failed; "
        f"{refs['models']} models ({refs['models_mb']:.0f} MB) through a {BUDGET_MB} MB budget; "
        f"RSS baseline {baseline / 2**20:.0f} MB, peak {peak / 2**20:.0f} MB "
        f"(limit {baseline / 2**20 + BUDGET_MB + ALLOWANCE_MB:.0f} MB)"
    )
    assert failures == []
    assert len(done) >= SESSIONS and kinds == {"predict", "features"}
    assert len({combo for combo, *_ in done}) >= len(COMBOS) // 2
    for combo, kind, arg, result in done:
        if kind == "predict":
            check_predict(refs[combo], arg, result)
        else:
            check_features(refs[combo], arg, result)
    assert peak <= baseline + (BUDGET_MB + ALLOWANCE_MB) * 2**20
