"""The hosting limits (modelkit.hosting): their defaults on a person's machine and on a Space,
the per-request caps, exports and uploads kept within their totals, and an out-of-memory error
that gets past the guards."""

from __future__ import annotations

import io
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from modelkit import hosting
from modelkit.app.cleanup import delete_cache, prune_folder
from modelkit.app.exports import ExportDir
from modelkit.config import DataConfig
from modelkit.errors import ConfigError, DeviceError, DiskLimitError, LimitError, ModelkitError
from modelkit.runtime import engine
from modelkit.runtime.model_cache import ModelCache
from modelkit.runtime.settings import RunSettings

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture
def no_settings(monkeypatch):
    for setting in hosting.SETTINGS:
        monkeypatch.delenv(setting.env, raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setattr(hosting, "machine_memory_mb", lambda: 16384)


def test_own_machine_defaults_do_not_limit_a_person(no_settings):
    lim = hosting.limits()
    assert not lim.on_space
    off = [s.field for s in hosting.SETTINGS if getattr(lim, s.field) is None]
    assert off == ["max_weights_gb", "max_uploads_mb", "upload_max_age_s", "max_exports_mb",
                   "queue_max_size", "max_batch_images", "max_scene_pixels"]  # fmt: skip
    assert lim.max_model_mb == 16384 - 2048 - 1024 and lim.max_ig_steps == 1024
    assert delete_cache(lim) is None


def test_a_space_is_stricter(no_settings, monkeypatch):
    monkeypatch.setenv("SPACE_ID", "someone/modelkit")
    lim = hosting.limits()
    assert lim.on_space and lim.max_model_mb == 16384 - 2048 - 2048
    assert (lim.max_weights_gb, lim.queue_max_size, lim.max_batch_images) == (20, 32, 500)
    assert (lim.max_uploads_mb, lim.upload_max_age_s, lim.max_exports_mb) == (4096, 3600, 2048)
    assert lim.max_ig_steps == 64 and lim.max_scene_pixels == 25_000_000
    assert delete_cache(lim) == (60, 3600)
    monkeypatch.setenv("MODELKIT_CONCURRENCY", "2")  # two builds at once share the memory
    assert hosting.limits().max_model_mb == (16384 - 2048 - 2048) // 2
    monkeypatch.setenv("MODELKIT_MODEL_CACHE_MB", "4096")
    assert hosting.limits().max_model_mb == (16384 - 4096 - 2048) // 2


def test_settings_are_read_now_and_can_be_turned_off(no_settings, monkeypatch):
    monkeypatch.setenv("SPACE_ID", "someone/modelkit")
    monkeypatch.setenv("MODELKIT_MAX_WEIGHTS_GB", "0.5")
    monkeypatch.setenv("MODELKIT_QUEUE_MAX", "none")
    monkeypatch.setenv("MODELKIT_MAX_BATCH_IMAGES", "1_000")
    lim = hosting.limits()
    assert lim.max_weights_bytes == 2**29 and lim.queue_max_size is None
    assert lim.max_batch_images == 1000


@pytest.mark.parametrize(
    "env, value", [("MODELKIT_MAX_MODEL_MB", "0"), ("MODELKIT_MAX_MODEL_MB", "lots"),
                   ("MODELKIT_QUEUE_MAX", "2.5"), ("MODELKIT_MAX_WEIGHTS_GB", "-1")],
)  # fmt: skip
def test_a_bad_setting_names_itself(no_settings, monkeypatch, env, value):
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError, match=f"{env}='{value}' is not valid"):
        hosting.limits()


def test_the_readme_lists_every_limit():
    text = README.read_text()
    section = text[text.index("## Hosting in public") :]
    for setting in hosting.SETTINGS:
        assert f"`{setting.env}`" in section, setting.env


# --- per-request caps ------------------------------------------------------------------------


def png(seed: int) -> bytes:
    buf = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


class NoBuild:
    """A model cache that fails the test if anything asks it for a model."""

    def get(self, key):
        raise AssertionError(f"a model was asked for: {key}")


def test_a_batch_over_the_limit_is_refused_before_any_model_work(monkeypatch, tmp_path):
    from modelkit.batches.job import batch

    archive = tmp_path / "three.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for i in range(3):
            z.writestr(f"img{i}.png", png(i))
    monkeypatch.setenv("MODELKIT_MAX_BATCH_IMAGES", "2")
    with pytest.raises(LimitError) as caught:
        batch(str(archive), "efficientnet_lite0", model_cache=NoBuild(), use_result_cache=False)
    assert str(caught.value).startswith("This batch has 3 images; this server runs at most 2 ")
    monkeypatch.setenv("MODELKIT_MAX_BATCH_IMAGES", "3")
    result = batch(str(archive), "efficientnet_lite0", pretrained=True, use_result_cache=False)
    assert result.total == 3 and result.errors == 0


def test_integrated_gradients_steps_over_the_limit(monkeypatch):
    from modelkit.explanations.api import explain

    monkeypatch.setenv("SPACE_ID", "someone/modelkit")  # 64 steps at most
    image = torch.zeros(3, 32, 32)
    with pytest.raises(LimitError, match="with 65 steps: this server allows at most 64 steps"):
        explain(image, "resnet18", method="integrated_gradients", steps=65,
                model_cache=NoBuild(), use_result_cache=False)  # fmt: skip


def test_scene_pixels(monkeypatch):
    monkeypatch.setenv("MODELKIT_MAX_SCENE_PIXELS", "1000000")
    hosting.check_scene_pixels(1000, 1000)
    with pytest.raises(LimitError, match=r"2,000 x 1,000 pixels \(2.0 megapixels\); this server"):
        hosting.check_scene_pixels(1000, 2000)


# --- exports and folders ---------------------------------------------------------------------


def aged(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_prune_folder_by_age_then_oldest_first(tmp_path):
    files = []
    for i in range(5):
        (tmp_path / f"d{i}").mkdir()
        files.append(tmp_path / f"d{i}" / "f.bin")
        files[-1].write_bytes(b"x" * 1000)
        aged(files[-1], 100 - i * 10)  # f0 oldest
    removed = prune_folder(tmp_path, max_bytes=2500, max_age_s=95, keep=[files[1]])
    # f0 is too old; then the oldest others until 2500 bytes remain, f1 kept
    assert removed == [files[0], files[2], files[3]]
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == [files[1], files[4]]
    assert not (tmp_path / "d0").exists()  # emptied folders go too
    assert prune_folder(tmp_path / "missing", 0) == []


def test_exports_are_bounded_by_total_size(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELKIT_MAX_EXPORTS_MB", "1")
    exports = ExportDir(tmp_path)
    paths = []
    for i in range(5):  # 5 x 300 kB through a 1 MB total
        paths.append(exports.write("weights.safetensors", bytes([i]) * 300_000))
        aged(paths[-1], 50 - i)
    kept = [p for p in paths if p.exists()]
    assert kept == paths[-3:]  # the newest three (900 kB) fit, the older two were pruned
    total = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    assert total <= 2**20
    with pytest.raises(DiskLimitError, match=r"would be 1.1 MB; this server keeps at most 1.0 MB"):
        exports.write("big.npz", b"x" * 1_100_000)
    assert all(p.exists() for p in kept)  # refused before anything was pruned for it


def test_exports_keep_their_age_limit(tmp_path):
    exports = ExportDir(tmp_path, max_age_s=60)
    old = exports.write("a.csv", "old")
    aged(old, 120)
    new = exports.write("b.csv", "new")
    assert new.exists() and not old.exists()


# --- out of memory past the guards ------------------------------------------------------------


class Tiny(nn.Module):
    def __init__(self, fail_forward: bool = False):
        super().__init__()
        self.fc, self.fail_forward = nn.Linear(3, 2), fail_forward
        self.data_config, self.categories, self.adaptations = DataConfig(), None, []
        self.num_classes = 2

    def forward(self, x):
        if self.fail_forward:
            raise RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 9 GB")
        return self.fc(x.mean(dim=(2, 3)))


TOO_BIG, TOO_HUNGRY, OTHER = "resnet18", "resnet34", "mobilenet_v3_small"  # names; built fake


def build(name, **kwargs):
    if name == TOO_BIG:
        raise MemoryError()
    return Tiny(fail_forward=name == TOO_HUNGRY)


@pytest.mark.parametrize("name", [TOO_BIG, TOO_HUNGRY])
def test_out_of_memory_evicts_the_cache_and_answers_in_words(name):
    cache = ModelCache(builder=build, max_models=4)
    other = RunSettings(OTHER, device="cpu").model_key()
    cache.get(other)  # another visitor's model
    x = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ModelkitError) as caught:
        engine.predict(x, name, model_cache=cache, use_result_cache=False)
    message = str(caught.value)
    if name == TOO_BIG:  # building: tried twice, then in words
        assert message.startswith(f"There is not enough memory to build '{TOO_BIG}'")
    else:  # running: the cache is emptied and it is tried once more
        assert isinstance(caught.value, DeviceError) and "ran out of memory" in message
    assert len(cache) == 0 and other not in cache
    again = engine.predict(x, OTHER, model_cache=cache, use_result_cache=False)
    assert again.logits.shape == (2,)  # and the server answers the next request
