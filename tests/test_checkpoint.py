"""Checkpoints round-trip exactly and refuse missing, corrupted or mismatched files."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import tiny_config
from lewm_mpc import CheckpointError, WorldModel
from lewm_mpc.models.run_meta import DatasetRef, RunMeta, SplitMeta, TrainingMeta

RUN_META = RunMeta(
    obs_mode="pixels",
    env_id="lewm_mpc/TwoRoom-v0",
    env_config={"image_size": 64},
    dataset=DatasetRef("data/tworoom.h5", "ab" * 32),
    split=SplitMeta(0.25, 3, (1, 4)),
    training=TrainingMeta(20, 8, 3, 1e-3, 1e-3, 0.09, 3),
    step=20,
    train_seconds=1.5,
)


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(0)
    model = WorldModel(tiny_config())
    model.set_action_stats(torch.tensor([0.1, -0.2]), torch.tensor([0.5, 0.7]))
    model.run_meta = RUN_META
    model.eval().save(tmp_path / "ckpt")
    return model, tmp_path / "ckpt"


def test_round_trip_gives_identical_outputs(saved):
    model, path = saved
    loaded = WorldModel.load(path)
    assert not loaded.training and loaded.run_meta == RUN_META
    pixels = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8)
    actions = torch.rand(3, 5, 10)
    with torch.no_grad():
        z, z_loaded = model.encode(pixels), loaded.encode(pixels)
        assert torch.equal(z, z_loaded)
        assert torch.equal(model.rollout(z, actions), loaded.rollout(z_loaded, actions))


def test_files_are_safetensors_and_json_not_pickle(saved):
    _, path = saved
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    header_len = int.from_bytes((path / "model.safetensors").read_bytes()[:8], "little")
    json.loads((path / "model.safetensors").read_bytes()[8 : 8 + header_len])
    assert json.loads((path / "config.json").read_text())["format_version"] == 2


def test_missing_files_are_refused(saved, tmp_path):
    _, path = saved
    with pytest.raises(CheckpointError, match="does not exist"):
        WorldModel.load(tmp_path / "nowhere")
    (path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing weights"):
        WorldModel.load(path)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_corrupted_weights_are_refused(saved, damage):
    _, path = saved
    weights = path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[-100] ^= 0xFF
    else:
        data = bytearray(b"\x00" * 64)
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="truncated, corrupted"):
        WorldModel.load(path)


def test_corrupted_or_mismatched_config_is_refused(saved):
    _, path = saved
    config_path = path / "config.json"
    original = json.loads(config_path.read_text())

    config_path.write_text(config_path.read_text()[:40])
    with pytest.raises(CheckpointError, match="not valid JSON"):
        WorldModel.load(path)

    wrong = json.loads(json.dumps(original))
    wrong["config"]["latent_dim"] = 32
    config_path.write_text(json.dumps(wrong))
    with pytest.raises(CheckpointError, match="do not match its config"):
        WorldModel.load(path)

    wrong = json.loads(json.dumps(original))
    wrong["format_version"] = 99
    config_path.write_text(json.dumps(wrong))
    with pytest.raises(CheckpointError, match="format_version 99"):
        WorldModel.load(path)

    wrong = json.loads(json.dumps(original))
    wrong["config"]["bogus"] = 1
    config_path.write_text(json.dumps(wrong))
    with pytest.raises(CheckpointError, match="bogus"):
        WorldModel.load(path)


def _write_version_1(path, model, extra) -> None:
    """A checkpoint as version 1 wrote it: free-form ``extra`` instead of ``run_meta``."""
    model.save(path)
    payload = json.loads((path / "config.json").read_text())
    del payload["run_meta"]
    payload.update(format_version=1, extra=extra)
    (path / "config.json").write_text(json.dumps(payload, indent=2, sort_keys=True))


def test_a_version_1_checkpoint_loads_with_its_metadata_converted(tmp_path):
    torch.manual_seed(0)
    model = WorldModel(tiny_config()).eval()
    train_config = {
        "steps": 20, "batch_size": 8, "num_frames": 3, "lr": 1e-3, "warmup_steps": 2,
        "weight_decay": 1e-3, "grad_clip": 1.0, "sigreg_weight": 0.09, "sigreg_projections": 32,
        "sigreg_knots": 17, "val_fraction": 0.2, "val_every": 10, "val_batches": 2,
        "checkpoint_every": 5, "seed": 7, "device": "auto",
    }  # fmt: skip
    extra = {
        "env_id": "lewm_mpc/TwoRoom-v0", "env_config": {"image_size": 64}, "obs_key": "pixels",
        "train_config": train_config, "step": 20, "train_seconds": 3.25,
    }  # fmt: skip
    _write_version_1(tmp_path / "old", model, extra)
    loaded = WorldModel.load(tmp_path / "old")
    meta = loaded.run_meta
    assert meta == RunMeta(
        obs_mode="pixels",
        env_id="lewm_mpc/TwoRoom-v0",
        env_config={"image_size": 64},
        split=SplitMeta(0.2, 7),
        training=TrainingMeta(20, 8, 3, 1e-3, 1e-3, 0.09, 7),
        step=20,
        train_seconds=3.25,
    )
    assert meta.dataset is None and meta.split.val_episodes is None
    pixels = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.equal(model.encode(pixels), loaded.encode(pixels))
    # a hand-saved version-1 model with no metadata at all
    _write_version_1(tmp_path / "bare", model, {})
    assert WorldModel.load(tmp_path / "bare").run_meta == RunMeta(obs_mode="pixels")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda meta: meta.update(obs_mode="depth"), "obs_mode"),
        (lambda meta: meta.update(obs_mode="state"), "encodes 'pixels'"),
        (lambda meta: meta.update(step=-1), "step"),
        (lambda meta: meta.update(surprise=1), "unknown run_meta keys"),
        (lambda meta: meta["dataset"].update(sha256="xyz"), "sha256"),
        (lambda meta: meta["split"].update(val_episodes=[3, 1]), "sorted"),
        (lambda meta: meta["split"].update(val_fraction=1.5), "val_fraction"),
        (lambda meta: meta["training"].pop("lr"), "lr"),
        (lambda meta: meta.update(format_version=7), "format_version 7"),
    ],
)
def test_invalid_run_metadata_is_refused(saved, change, message):
    _, path = saved
    payload = json.loads((path / "config.json").read_text())
    change(payload["run_meta"])
    (path / "config.json").write_text(json.dumps(payload))
    with pytest.raises(CheckpointError, match=message):
        WorldModel.load(path)
