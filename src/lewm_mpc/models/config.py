"""World-model configuration: a frozen, validated dataclass plus named presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from lewm_mpc.types import ObsMode, check_obs_mode
from lewm_mpc.validation import check_action_bounds

ENCODERS = ("cnn", "vit")
ACTION_ENCODERS = ("mlp", "embedder")
PREDICTORS = ("mlp", "transformer")


@dataclass(frozen=True)
class WorldModelConfig:
    """Architecture of a JEPA world model.

    Attributes:
        obs_mode: "pixels" (uint8 HxWx3 images) or "state" (float vectors).
        image_size: side of square pixel observations.
        state_dim: size of state observations (required when obs_mode == "state").
        action_dim: size A of one env action.
        action_block: env actions per model step (frameskip).
        action_low: per-dimension lower env-action bound, length A (finite; a tuple, list,
            numpy array or tensor, stored as a tuple of floats).
        action_high: per-dimension upper env-action bound, length A, above ``action_low``.
        latent_dim: embedding size D.
        encoder: "cnn" (small strided CNN) or "vit" (ViT with CLS token); pixels only.
        cnn_channels: output channels of each stride-2 conv.
        vit_patch: ViT patch size.
        vit_dim: ViT width.
        vit_depth: ViT layers.
        vit_heads: ViT attention heads.
        feature_dim: encoder output size before the projector.
        state_hidden: hidden width of the state-encoder MLP.
        projector_hidden: hidden width of the BatchNorm projector heads.
        action_embed_dim: size of one action-block embedding.
        action_encoder: "mlp" (Linear -> SiLU -> Linear, CPU default) or "embedder"
            (LeWorldModel's: a linear map to 10 features, then a 4x-wide SiLU MLP).
        predictor: "mlp" (residual MLP, CPU default) or "transformer" (AdaLN, causal).
        predictor_hidden: MLP hidden width / transformer MLP width.
        predictor_depth: MLP hidden layers / transformer blocks.
        predictor_heads: transformer attention heads.
        predictor_head_dim: width of one attention head (attention is heads x head_dim wide).
        predictor_dropout: transformer dropout.
        history: past embeddings the predictor sees.
    """

    obs_mode: ObsMode = "pixels"
    image_size: int = 64
    state_dim: int | None = None
    action_dim: int = 2
    action_block: int = 5
    action_low: tuple[float, ...] = (-1.0, -1.0)
    action_high: tuple[float, ...] = (1.0, 1.0)
    latent_dim: int = 64
    encoder: str = "cnn"
    cnn_channels: tuple[int, ...] = (16, 32, 64, 64)
    vit_patch: int = 14
    vit_dim: int = 192
    vit_depth: int = 12
    vit_heads: int = 3
    feature_dim: int = 256
    state_hidden: int = 256
    projector_hidden: int = 512
    action_embed_dim: int = 64
    action_encoder: str = "mlp"
    predictor: str = "mlp"
    predictor_hidden: int = 512
    predictor_depth: int = 2
    predictor_heads: int = 16
    predictor_head_dim: int = 64
    predictor_dropout: float = 0.0
    history: int = 1

    def __post_init__(self) -> None:
        # JSON round trips turn tuples into lists: normalize before validating.
        object.__setattr__(self, "cnn_channels", tuple(self.cnn_channels))
        check_obs_mode(self.obs_mode)
        _check_choice("encoder", self.encoder, ENCODERS)
        _check_choice("predictor", self.predictor, PREDICTORS)
        _check_choice("action_encoder", self.action_encoder, ACTION_ENCODERS)
        if self.obs_mode == "state" and (self.state_dim is None or self.state_dim < 1):
            raise ValueError("obs_mode='state' needs state_dim >= 1")
        for name in (
            "image_size", "action_dim", "action_block", "latent_dim", "feature_dim",
            "projector_hidden", "action_embed_dim", "predictor_hidden", "predictor_depth",
            "predictor_heads", "predictor_head_dim", "history",
        ):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        # Tuples, lists, numpy arrays or tensors; stored as tuples of Python floats (JSON-ready).
        low, high = check_action_bounds(
            self.action_low, self.action_high, self.action_dim, owner="WorldModelConfig"
        )
        object.__setattr__(self, "action_low", tuple(low.tolist()))
        object.__setattr__(self, "action_high", tuple(high.tolist()))
        if not 0.0 <= self.predictor_dropout < 1.0:
            raise ValueError(f"predictor_dropout must be in [0, 1), got {self.predictor_dropout}")

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """Shape of one observation."""
        if self.obs_mode == "pixels":
            return (self.image_size, self.image_size, 3)
        assert self.state_dim is not None
        return (self.state_dim,)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorldModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (``obs_kind``, the name of
        ``obs_mode`` in earlier checkpoints, is read as ``obs_mode``)."""
        data = dict(data)
        if "obs_kind" in data and "obs_mode" not in data:
            data["obs_mode"] = data.pop("obs_kind")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown world-model config keys: {unknown}")
        return cls(**data)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def named_config(name: str, **overrides: Any) -> WorldModelConfig:
    """A named architecture preset, with field overrides.

    * ``"cpu"`` (default): 64x64 pixels, 4-layer CNN, 64-d latents, residual MLP predictor;
      trains in minutes on 2 CPU cores and plans 300x30 CEM in well under a second.
    * ``"paper"``: LeWorldModel's architecture, module for module (its checkpoints convert
      with ``WorldModel.from_lewm``): ViT-tiny/14 at 224 px (HuggingFace ViT maths, ImageNet
      pixel normalization), 192-d latents, 2048-wide BatchNorm projectors, its action
      ``Embedder``, 6-layer 16-head (x 64) AdaLN transformer predictor (MLP 2048, dropout
      0.1, history 3). About 18M parameters; meant for a GPU.
    """
    presets: dict[str, dict[str, Any]] = {
        "cpu": {},
        "paper": dict(
            image_size=224,
            encoder="vit",
            vit_patch=14,
            vit_dim=192,
            vit_depth=12,
            vit_heads=3,
            feature_dim=192,
            latent_dim=192,
            projector_hidden=2048,
            action_embed_dim=192,
            action_encoder="embedder",
            predictor="transformer",
            predictor_hidden=2048,
            predictor_depth=6,
            predictor_heads=16,
            predictor_head_dim=64,
            predictor_dropout=0.1,
            history=3,
        ),
    }
    if name not in presets:
        raise ValueError(f"unknown world-model config {name!r}; choose from {sorted(presets)}")
    return WorldModelConfig(**{**presets[name], **overrides})
