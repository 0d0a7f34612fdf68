"""Shared fixtures: no test may download anything; fabricated checkpoints for weight tests."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

# results and model facts of this test session go to a folder of its own, not ~/.cache/modelkit
os.environ.setdefault("MODELKIT_CACHE_DIR", tempfile.mkdtemp(prefix="modelkit-tests-"))
# torch serves unless a test asks for a compiled backend: "auto" would compile every model the
# tests build in the background (tests/test_backends*.py and test_backend_runs.py use them)
os.environ.setdefault("MODELKIT_BACKEND", "torch")


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("MODELKIT_OFFLINE", "1")


def pytest_collection_modifyitems(items):
    """The tests on the shared app run last, one after another, so that its server lives only
    while they run: even idle, gradio's queue loop takes about 7 % of a core."""
    items.sort(key=lambda item: "shared_app" in item.fixturenames)  # stable: order kept within


@pytest.fixture(scope="session")
def shared_app(tmp_path_factory):
    """The app with its default settings, started once for the tests that need nothing else (a
    start costs 7-10 s on 2 cores). Its caches are not empty when a test begins: a test that
    needs a fresh server, or other settings, starts its own."""
    from app_server import start_app

    server = start_app(tmp_path_factory.mktemp("shared-app"))
    yield server
    server.stop()


@pytest.fixture
def fabricate(tmp_path):
    """fabricate(name, seed=0, suffix=".pth", **create_kwargs) -> (path, state_dict) of a
    randomly initialised model saved like a real checkpoint."""
    from modelkit import create_model

    def make(name: str, seed: int = 0, suffix: str = ".pth", **kwargs):
        torch.manual_seed(seed)
        sd = create_model(name, **kwargs).state_dict()
        path = tmp_path / f"{name}-{seed}-{len(list(tmp_path.iterdir()))}{suffix}"
        if suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
        else:
            torch.save(sd, path)
        return path, sd

    return make
