"""Checkpoints round-trip exactly and refuse missing, corrupted or mismatched files."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import tiny_config
from lewm_mpc import CheckpointError, WorldModel


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(0)
    model = WorldModel(tiny_config())
    model.set_action_stats(torch.tensor([0.1, -0.2]), torch.tensor([0.5, 0.7]))
    model.metadata = {"env_id": "lewm_mpc/TwoRoom-v0"}
    model.eval().save(tmp_path / "ckpt")
    return model, tmp_path / "ckpt"


def test_round_trip_gives_identical_outputs(saved):
    model, path = saved
    loaded = WorldModel.load(path)
    assert not loaded.training and loaded.metadata == {"env_id": "lewm_mpc/TwoRoom-v0"}
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
    assert json.loads((path / "config.json").read_text())["format_version"] == 1


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
