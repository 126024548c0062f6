"""LeWorldModel checkpoints convert to the paper architecture and give LeWM's numbers.

``tests/data/lewm_small`` was written by ``benchmarks/peers/lewm_reference.py --small`` with
LeWM's own classes (stable-worldmodel 0.1.1 + HuggingFace ViT) in the peers venv: its
``config.json``, the state_dict's keys and shapes, and LeWM's embeddings and 5-step rollout
for fixed inputs. The weights are a deterministic function of the keys (:func:`lewm_weights`,
the same rule the script used), so they are rebuilt here instead of being stored.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lewm_mpc import WorldModel
from lewm_mpc.models.checkpoint import CheckpointError
from lewm_mpc.models.lewm_import import lewm_model_config

FIXTURE = Path(__file__).parent / "data" / "lewm_small"


def lewm_weights(keys: list, seed: int = 0) -> dict[str, torch.Tensor]:
    """The reference script's fill: norm scales near 1, BatchNorm statistics, the rest small."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape, dtype in sorted(keys, key=lambda key: key[0]):
        shape = tuple(shape)
        if "float" not in dtype:  # num_batches_tracked: as initialized
            out[name] = torch.zeros(shape, dtype=getattr(torch, dtype.removeprefix("torch.")))
        elif name.endswith("running_var"):
            out[name] = torch.from_numpy(1.0 + 0.5 * rng.random(shape)).float()
        elif name.endswith("running_mean"):
            out[name] = torch.from_numpy(0.1 * rng.standard_normal(shape)).float()
        elif len(shape) == 1 and name.endswith("weight"):
            out[name] = torch.from_numpy(1.0 + 0.1 * rng.standard_normal(shape)).float()
        else:
            out[name] = torch.from_numpy(0.05 * rng.standard_normal(shape)).float()
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("lewm")
    keys = json.loads((FIXTURE / "keys.json").read_text())
    torch.save(lewm_weights(keys), folder / "weights.pt")
    return folder / "weights.pt", FIXTURE / "config.json"


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(FIXTURE / "reference.npz") as data:
        return {name: data[name] for name in data.files}


def _encode(model: WorldModel, pixels: np.ndarray) -> torch.Tensor:
    frames = torch.from_numpy(pixels)  # (B, T, S, S, 3)
    flat = frames.flatten(0, 1)  # (B*T, S, S, 3)
    with torch.no_grad():
        return model.encode(flat).view(*frames.shape[:2], -1)  # (B, T, D)


def _rollout(model: WorldModel, emb: torch.Tensor, actions: np.ndarray) -> torch.Tensor:
    """From the third frame, with the first two (and their blocks) as history; 5 blocks."""
    blocks = torch.from_numpy(actions)  # (B, 7, block)
    with torch.no_grad():
        latents = model.rollout(emb[:, 2], blocks[:, 2:7], emb[:, :2], blocks[:, :2])
    return latents[:, 1:]  # (B, 5, D)


def test_a_converted_checkpoint_gives_lewms_embeddings_and_rollout(checkpoint, reference):
    model = WorldModel.from_lewm(*checkpoint, action_block=5)
    assert not model.training
    emb = _encode(model, reference["pixels"])
    np.testing.assert_allclose(emb.numpy(), reference["emb"], atol=1e-5, rtol=1e-5)
    predicted = _rollout(model, emb, reference["actions"])
    np.testing.assert_allclose(predicted.numpy(), reference["rollout"], atol=1e-5, rtol=1e-5)


def test_the_converted_model_saves_and_loads_as_ours(checkpoint, reference, tmp_path):
    options = dict(action_low=(-2, -1), action_high=(2, 1), action_mean=(0.1, 0), action_std=(2, 1))
    model = WorldModel.from_lewm(*checkpoint, action_block=5, **options)
    model.save(tmp_path / "ours")
    again = WorldModel.load(tmp_path / "ours")
    assert again.config == model.config and again.config.action_low == (-2.0, -1.0)
    torch.testing.assert_close(again.action_std, torch.tensor([2.0, 1.0]))
    emb = _encode(again, reference["pixels"])
    torch.testing.assert_close(emb, _encode(model, reference["pixels"]), rtol=0, atol=0)


def test_the_paper_config_is_lewms_architecture():
    config = json.loads((FIXTURE / "config.json").read_text())
    ours = lewm_model_config(config)
    assert (ours.encoder, ours.predictor, ours.action_encoder) == ("vit", "transformer", "embedder")
    assert ours.action_dim == 2 and ours.history == 3
    paper = WorldModel(lewm_model_config({**config, "encoder": {**config["encoder"],
                                                                "image_size": 224,
                                                                "num_hidden_layers": 12},
                                          "predictor": {**config["predictor"], "depth": 6,
                                                        "mlp_dim": 2048},
                                          "projector": {**config["projector"], "hidden_dim": 2048},
                                          "pred_proj": {**config["pred_proj"], "hidden_dim": 2048},
                                          }))  # fmt: skip
    assert paper.num_parameters() == 18_034_478  # LeWM's own count for its default config


@pytest.mark.parametrize(
    "change, error, message",
    [
        (lambda c: c.pop("predictor"), ValueError, "no 'predictor' section"),
        (lambda c: c["action_encoder"].update(input_dim=9), ValueError, "does not divide it"),
        (lambda c: c["encoder"].update(size="huge"), ValueError, "unknown LeWM ViT size"),
        (lambda c: c["predictor"].update(output_dim=64), ValueError, "dims must be equal"),
        (lambda c: c["predictor"].update(depth=3), CheckpointError, "does not fit"),
    ],
)
def test_bad_checkpoints_are_refused_clearly(checkpoint, tmp_path, change, error, message):
    config = json.loads(checkpoint[1].read_text())
    change(config)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    with pytest.raises(error, match=message):
        WorldModel.from_lewm(checkpoint[0], path)


def test_a_foreign_tensor_is_named(checkpoint, tmp_path):
    state = torch.load(checkpoint[0], weights_only=True)
    state["encoder.pooler.dense.weight"] = torch.zeros(2, 2)
    torch.save(state, tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="pooler"):
        WorldModel.from_lewm(tmp_path / "weights.pt", checkpoint[1])


def test_the_command_line_converts_and_the_result_loads(checkpoint, reference, tmp_path, capsys):
    from lewm_mpc.cli import main

    out = tmp_path / "converted"
    assert main(["convert-lewm", *map(str, checkpoint), "--out", str(out),
                 "--action-low=-2,-1", "--action-high", "2,1"]) == 0  # fmt: skip
    model = WorldModel.load(out)
    assert model.config.action_high == (2.0, 1.0)
    emb = _encode(model, reference["pixels"])
    np.testing.assert_allclose(emb.numpy(), reference["emb"], atol=1e-5, rtol=1e-5)
    assert main(["convert-lewm", *map(str, checkpoint), "--out", str(out)]) == 2  # not empty
    assert "not empty" in capsys.readouterr().err


LAYER = r"encoder.encoder.layer.\1."
TRANSFORMERS_4_NAMES = (  # transformers 5's ViT tensor names -> 4's (LeWM's published files)
    (r"encoder\.layers\.(\d+)\.attention\.q_proj", LAYER + "attention.attention.query"),
    (r"encoder\.layers\.(\d+)\.attention\.k_proj", LAYER + "attention.attention.key"),
    (r"encoder\.layers\.(\d+)\.attention\.v_proj", LAYER + "attention.attention.value"),
    (r"encoder\.layers\.(\d+)\.attention\.o_proj", LAYER + "attention.output.dense"),
    (r"encoder\.layers\.(\d+)\.mlp\.fc1", LAYER + "intermediate.dense"),
    (r"encoder\.layers\.(\d+)\.mlp\.fc2", LAYER + "output.dense"),
    (r"encoder\.layers\.(\d+)\.layernorm_", LAYER + "layernorm_"),
)


def test_transformers_4_tensor_names_convert_alike(checkpoint, reference, tmp_path):
    import re

    state = torch.load(checkpoint[0], weights_only=True)
    renamed = {}
    for name, tensor in state.items():
        for pattern, replacement in TRANSFORMERS_4_NAMES:
            name = re.sub(pattern, replacement, name)
        renamed[name] = tensor
    assert any(name.startswith("encoder.encoder.layer.0.attention.attention.") for name in renamed)
    torch.save(renamed, tmp_path / "weights.pt")
    model = WorldModel.from_lewm(tmp_path / "weights.pt", checkpoint[1])
    emb = _encode(model, reference["pixels"])
    np.testing.assert_allclose(emb.numpy(), reference["emb"], atol=1e-5, rtol=1e-5)
