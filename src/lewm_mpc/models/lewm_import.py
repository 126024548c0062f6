"""LeWorldModel checkpoints (``weights.pt`` + ``config.json``) as lewm_mpc world models.

LeWM publishes a model as a torch ``state_dict`` (``weights.pt``) and the resolved Hydra config
of its model (``config.json``: ``encoder`` = HuggingFace ViT via ``vit_hf``, ``predictor`` =
its AdaLN ``Predictor``, ``action_encoder`` = ``Embedder``, ``projector`` / ``pred_proj`` =
BatchNorm ``MLP``). Our ``paper`` configuration is that architecture module for module, so a
checkpoint converts by renaming its tensors: the same weights give the same embeddings and
rollouts (checked against LeWM's own classes to 1e-5, ``tests/test_lewm_import.py``).

What the checkpoint does not hold is supplied by the caller: the action block (LeWM's
``frameskip``, 5 in its configs), the env's action bounds (planners need them) and the action
normalization statistics (LeWM z-scores actions with its dataset's per-dimension mean and std,
outside the model).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from lewm_mpc.models.checkpoint import CheckpointError
from lewm_mpc.models.config import WorldModelConfig, named_config
from lewm_mpc.models.jepa import WorldModel

# vit_hf's sizes: (hidden, layers, heads); intermediate = 4 x hidden.
VIT_SIZES = {"tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12)}

# LeWM state_dict key (regex) -> ours; \1 is a layer index. The ViT's names are those of
# transformers 4 (LeWM's published checkpoints) or 5.
_RENAMES: tuple[tuple[str, str], ...] = (
    (r"encoder\.embeddings\.cls_token", "encoder.cls"),
    (r"encoder\.embeddings\.position_embeddings", "encoder.pos"),
    (r"encoder\.embeddings\.patch_embeddings\.projection\.(weight|bias)", r"encoder.patchify.\1"),
    (r"encoder\.encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)",
     r"encoder.blocks.\1.\2.\3"),
    (r"encoder\.encoder\.layer\.(\d+)\.attention\.output\.dense\.(weight|bias)",
     r"encoder.blocks.\1.out.\2"),
    (r"encoder\.encoder\.layer\.(\d+)\.intermediate\.dense\.(weight|bias)",
     r"encoder.blocks.\1.fc1.\2"),
    (r"encoder\.encoder\.layer\.(\d+)\.output\.dense\.(weight|bias)", r"encoder.blocks.\1.fc2.\2"),
    (r"encoder\.encoder\.layer\.(\d+)\.layernorm_before\.(weight|bias)",
     r"encoder.blocks.\1.norm1.\2"),
    (r"encoder\.encoder\.layer\.(\d+)\.layernorm_after\.(weight|bias)",
     r"encoder.blocks.\1.norm2.\2"),
    # transformers >= 5 names the same ViT tensors differently
    (r"encoder\.layers\.(\d+)\.attention\.q_proj\.(weight|bias)", r"encoder.blocks.\1.query.\2"),
    (r"encoder\.layers\.(\d+)\.attention\.k_proj\.(weight|bias)", r"encoder.blocks.\1.key.\2"),
    (r"encoder\.layers\.(\d+)\.attention\.v_proj\.(weight|bias)", r"encoder.blocks.\1.value.\2"),
    (r"encoder\.layers\.(\d+)\.attention\.o_proj\.(weight|bias)", r"encoder.blocks.\1.out.\2"),
    (r"encoder\.layers\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)", r"encoder.blocks.\1.\2.\3"),
    (r"encoder\.layers\.(\d+)\.layernorm_before\.(weight|bias)", r"encoder.blocks.\1.norm1.\2"),
    (r"encoder\.layers\.(\d+)\.layernorm_after\.(weight|bias)", r"encoder.blocks.\1.norm2.\2"),
    (r"encoder\.layernorm\.(weight|bias)", r"encoder.norm.\1"),
    (r"predictor\.pos_embedding", "predictor.pos"),
    (r"predictor\.transformer\.norm\.(weight|bias)", r"predictor.norm.\1"),
    (r"predictor\.transformer\.layers\.(\d+)\.attn\.norm\.(weight|bias)",
     r"predictor.blocks.\1.attn.norm.\2"),
    (r"predictor\.transformer\.layers\.(\d+)\.attn\.to_qkv\.weight",
     r"predictor.blocks.\1.attn.to_qkv.weight"),
    (r"predictor\.transformer\.layers\.(\d+)\.attn\.to_out\.0\.(weight|bias)",
     r"predictor.blocks.\1.attn.to_out.\2"),
    (r"predictor\.transformer\.layers\.(\d+)\.mlp\.net\.([014])\.(weight|bias)",
     r"predictor.blocks.\1.mlp.\2.\3"),
    (r"predictor\.transformer\.layers\.(\d+)\.adaLN_modulation\.1\.(weight|bias)",
     r"predictor.blocks.\1.modulation.1.\2"),
    (r"action_encoder\.patch_embed\.(weight|bias)", r"action_encoder.smooth.\1"),
    (r"action_encoder\.embed\.([02])\.(weight|bias)", r"action_encoder.net.\1.\2"),
    (r"projector\.net\.([013])\.(\w+)", r"projector.net.\1.\2"),
    (r"pred_proj\.net\.([013])\.(\w+)", r"pred_projector.net.\1.\2"),
)  # fmt: skip


def _section(config: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    section = config.get(name)
    if not isinstance(section, Mapping):
        raise ValueError(f"LeWM config.json has no {name!r} section (got {section!r})")
    return section


def _require(section: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in section:
        raise ValueError(f"LeWM config.json: {where} has no {key!r}")
    return section[key]


def lewm_model_config(
    config: Mapping[str, Any],
    *,
    action_block: int = 5,
    action_low: Sequence[float] | None = None,
    action_high: Sequence[float] | None = None,
) -> WorldModelConfig:
    """Our ``paper``-style config of a LeWM ``config.json`` (its ``_target_`` entries are
    ignored: the numbers decide).

    Args:
        config: the parsed ``config.json``.
        action_block: env actions per model step (LeWM's ``frameskip``).
        action_low, action_high: the env's action bounds (default: -1 and 1 per dimension).

    Raises:
        ValueError: A missing section or value, or an architecture the ``paper`` layout does
            not express (an input/output projection in the predictor, another ViT MLP ratio,
            projectors of different widths).
    """
    encoder = _section(config, "encoder")
    predictor = _section(config, "predictor")
    actions = _section(config, "action_encoder")
    projector, pred_proj = _section(config, "projector"), _section(config, "pred_proj")
    size = encoder.get("size", "tiny")
    if size not in VIT_SIZES:
        raise ValueError(f"unknown LeWM ViT size {size!r}; known: {sorted(VIT_SIZES)}")
    hidden, layers, heads = VIT_SIZES[size]
    hidden = int(encoder.get("hidden_size", hidden))
    if int(encoder.get("intermediate_size", 4 * hidden)) != 4 * hidden:
        raise ValueError("the ViT's intermediate_size must be 4 x hidden_size")
    dims = {key: int(_require(predictor, key, "predictor"))
            for key in ("input_dim", "hidden_dim", "output_dim")}  # fmt: skip
    if len(set(dims.values())) != 1:
        raise ValueError(f"predictor dims must be equal (no input/output projection), got {dims}")
    latent = int(_require(projector, "output_dim", "projector"))
    widths = (int(_require(projector, "hidden_dim", "projector")),
              int(_require(pred_proj, "hidden_dim", "pred_proj")))  # fmt: skip
    if widths[0] != widths[1]:
        raise ValueError(f"projector and pred_proj hidden_dim differ: {widths}")
    block_dim = int(_require(actions, "input_dim", "action_encoder"))
    if action_block < 1 or block_dim % action_block:
        raise ValueError(
            f"action_encoder.input_dim {block_dim} is frameskip x action dim; action_block "
            f"{action_block} does not divide it"
        )
    action_dim = block_dim // action_block
    low = tuple(action_low) if action_low is not None else (-1.0,) * action_dim
    high = tuple(action_high) if action_high is not None else (1.0,) * action_dim
    return named_config(
        "paper",
        image_size=int(_require(encoder, "image_size", "encoder")),
        vit_patch=int(_require(encoder, "patch_size", "encoder")),
        vit_dim=hidden,
        vit_depth=int(encoder.get("num_hidden_layers", layers)),
        vit_heads=int(encoder.get("num_attention_heads", heads)),
        feature_dim=hidden,
        latent_dim=latent,
        projector_hidden=widths[0],
        action_dim=action_dim,
        action_block=action_block,
        action_low=low,
        action_high=high,
        action_embed_dim=int(_require(actions, "emb_dim", "action_encoder")),
        predictor_hidden=int(_require(predictor, "mlp_dim", "predictor")),
        predictor_depth=int(_require(predictor, "depth", "predictor")),
        predictor_heads=int(_require(predictor, "heads", "predictor")),
        predictor_head_dim=int(predictor.get("dim_head", 64)),
        predictor_dropout=float(predictor.get("dropout", 0.0)),
        history=int(_require(predictor, "num_frames", "predictor")),
    )


def convert_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """LeWM tensor names -> ours (the 1x1 Conv1d of the action ``Embedder`` becomes a Linear).

    Raises:
        CheckpointError: A tensor no rule renames.
    """
    converted: dict[str, torch.Tensor] = {}
    unknown = []
    for name, tensor in state.items():
        for pattern, replacement in _RENAMES:
            if re.fullmatch(pattern, name):
                ours = re.sub(pattern, replacement, name)
                if ours == "action_encoder.smooth.weight":
                    tensor = tensor.squeeze(-1)  # Conv1d (out, in, 1) -> Linear (out, in)
                converted[ours] = tensor
                break
        else:
            unknown.append(name)
    if unknown:
        raise CheckpointError(
            f"{len(unknown)} LeWM tensors have no counterpart in the paper architecture, e.g. "
            f"{unknown[:3]}"
        )
    return converted


def load_lewm(
    weights: str | Path,
    config: str | Path,
    *,
    action_block: int = 5,
    action_low: Sequence[float] | None = None,
    action_high: Sequence[float] | None = None,
    action_mean: Sequence[float] | None = None,
    action_std: Sequence[float] | None = None,
    device: str | torch.device = "cpu",
) -> WorldModel:
    """A LeWM checkpoint as a :class:`WorldModel` (eval mode); ``model.save(dir)`` writes it as
    our safetensors checkpoint.

    Args:
        weights: LeWM's ``weights.pt`` (a ``state_dict``; read with ``weights_only=True``).
        config: its ``config.json``.
        action_block: env actions per model step (LeWM's ``frameskip``, 5 in its configs).
        action_low, action_high: the env's action bounds (default -1 and 1).
        action_mean, action_std: the per-dimension action statistics LeWM normalized with
            (default 0 and 1: actions already normalized).
        device: where the model goes.

    Raises:
        FileNotFoundError: A missing file.
        ValueError: A config the paper architecture cannot express.
        CheckpointError: Weights that do not fit the config.
    """
    weights, config = Path(weights), Path(config)
    for path in (weights, config):
        if not path.is_file():
            raise FileNotFoundError(f"no such LeWM checkpoint file: {path}")
    try:
        parsed = json.loads(config.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{config} is not JSON: {error}") from None
    model_config = lewm_model_config(
        parsed, action_block=action_block, action_low=action_low, action_high=action_high
    )
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling errors come in many classes
        raise CheckpointError(f"{weights} is not a torch state_dict: {error}") from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]  # a training checkpoint around the state_dict
    model = WorldModel(model_config)
    converted = convert_state_dict(state)
    own = model.state_dict()
    missing = sorted(k for k in own if k not in converted and not _our_own_buffer(k))
    wrong = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}"
             for k, v in converted.items() if k in own and v.shape != own[k].shape]  # fmt: skip
    if missing or wrong:
        raise CheckpointError(
            f"{weights} does not fit {config}: missing {missing[:3]}, shape mismatches {wrong[:3]}"
        )
    model.load_state_dict({**own, **converted}, strict=True)
    dim = model_config.action_dim
    mean = [0.0] * dim if action_mean is None else [float(v) for v in action_mean]
    std = [1.0] * dim if action_std is None else [float(v) for v in action_std]
    if len(mean) != dim or len(std) != dim or min(std) <= 0:
        raise ValueError(f"action_mean and action_std need {dim} values each, std > 0")
    model.set_action_stats(torch.tensor(mean), torch.tensor(std))
    return model.to(device).eval()


def _our_own_buffer(name: str) -> bool:
    """Tensors LeWM's checkpoint cannot hold: action statistics and bounds."""
    return name in ("action_mean", "action_std", "_action_low", "_action_high")


__all__ = ["convert_state_dict", "lewm_model_config", "load_lewm"]
