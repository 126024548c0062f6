"""The action-conditioned JEPA world model (LeWorldModel style).

encoder -> projector gives embeddings z_t; the action encoder embeds blocks of
``action_block`` env actions; the predictor maps (z_{<=t}, a_t) to a prediction of z_{t+1},
passed through its own projector. Training minimizes MSE(prediction, next embedding) plus
lambda * SIGReg on the embeddings, end to end (no stop-gradient, no EMA target).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lewm_mpc.models.checkpoint import read_checkpoint, restore_weights, save_world_model
from lewm_mpc.models.config import WorldModelConfig
from lewm_mpc.models.encoders import (
    ActionEncoder,
    BlockEmbedder,
    ConvEncoder,
    Projector,
    StateEncoder,
    ViTEncoder,
)
from lewm_mpc.models.fused_cache import FusedStepCache
from lewm_mpc.models.fused_rollout import fused_mlp_rollout
from lewm_mpc.models.predictors import MLPPredictor, TransformerPredictor
from lewm_mpc.models.run_meta import RunMeta
from lewm_mpc.models.sigreg import SIGRegConfig, sigreg


@dataclass(frozen=True)
class LossTerms:
    """One training step's losses (tensors, so ``total`` can be back-propagated)."""

    total: torch.Tensor
    prediction: torch.Tensor
    sigreg: torch.Tensor
    latents: torch.Tensor | None = None  # (B, T, D) embeddings of the windows' frames
    rollout: torch.Tensor | None = None  # open-loop multi-step prediction error, if asked for


def _build_encoder(config: WorldModelConfig) -> tuple[nn.Module, int]:
    if config.obs_mode == "state":
        assert config.state_dim is not None
        encoder = StateEncoder(config.state_dim, config.state_hidden, config.feature_dim)
        return encoder, config.feature_dim
    if config.encoder == "vit":
        encoder = ViTEncoder(
            config.image_size, config.vit_patch, config.vit_dim, config.vit_depth,
            config.vit_heads, mlp_dim=4 * config.vit_dim,
        )  # fmt: skip
        return encoder, config.vit_dim
    return ConvEncoder(config.image_size, config.cnn_channels, config.feature_dim), (
        config.feature_dim
    )


def _build_predictor(config: WorldModelConfig) -> nn.Module:
    if config.predictor == "transformer":
        return TransformerPredictor(
            config.latent_dim, config.action_embed_dim, config.predictor_depth,
            config.predictor_heads, config.predictor_hidden, config.history,
            config.predictor_dropout, config.predictor_head_dim,
        )  # fmt: skip
    return MLPPredictor(
        config.latent_dim, config.action_embed_dim, config.predictor_hidden,
        config.predictor_depth, config.history,
    )  # fmt: skip


class WorldModel(nn.Module):
    """JEPA world model satisfying :class:`lewm_mpc.types.LatentWorldModel`.

    Args:
        config: architecture.
    """

    def __init__(self, config: WorldModelConfig) -> None:
        super().__init__()
        self.config = config
        # What the checkpoint knows about its run (env, dataset, split, training); saved with it.
        self.run_meta = RunMeta(obs_mode=config.obs_mode)  # type: ignore[arg-type]
        self.encoder, feature_dim = _build_encoder(config)
        self.projector = Projector(feature_dim, config.projector_hidden, config.latent_dim)
        encoder_class = BlockEmbedder if config.action_encoder == "embedder" else ActionEncoder
        self.action_encoder = encoder_class(
            config.action_block * config.action_dim, config.action_embed_dim
        )
        self.predictor = _build_predictor(config)
        self.pred_projector = Projector(
            config.latent_dim, config.projector_hidden, config.latent_dim
        )
        self._fused_steps = FusedStepCache()  # the eval-mode rollout's rearranged weights
        # Action normalization (dataset statistics, set before training) and env bounds.
        self.register_buffer("action_mean", torch.zeros(config.action_dim))
        self.register_buffer("action_std", torch.ones(config.action_dim))
        self.register_buffer("_action_low", torch.tensor(config.action_low, dtype=torch.float32))
        self.register_buffer("_action_high", torch.tensor(config.action_high, dtype=torch.float32))

    # ----------------------------------------------------------------- protocol members
    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def action_dim(self) -> int:
        return self.config.action_dim

    @property
    def action_block(self) -> int:
        return self.config.action_block

    @property
    def action_low(self) -> torch.Tensor:
        return self._action_low

    @property
    def action_high(self) -> torch.Tensor:
        return self._action_high

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """Shape of one observation this model encodes."""
        return self.config.obs_shape

    @property
    def obs_dtype(self) -> torch.dtype:
        """uint8 for pixel models, float32 for state models."""
        return torch.uint8 if self.config.obs_mode == "pixels" else torch.float32

    @property
    def device(self) -> torch.device:
        return self._action_low.device

    @property
    def history(self) -> int:
        """Past embeddings the predictor conditions on."""
        return self.config.history

    # ----------------------------------------------------------------------- model maths
    def set_action_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store dataset action statistics used to normalize action blocks."""
        self.action_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.action_std.copy_(torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-6))

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, *obs_shape) observations -> (B, D) embeddings."""
        return self.projector(self.encoder(obs))

    def embed_actions(self, action_blocks: torch.Tensor) -> torch.Tensor:
        """(..., action_block * A) env-space blocks -> (..., E) embeddings."""
        lead = action_blocks.shape[:-1]
        per_action = action_blocks.reshape(*lead, self.action_block, self.action_dim)
        normalized = (per_action - self.action_mean) / self.action_std  # (..., block, A)
        return self.action_encoder(normalized.reshape(*lead, -1))  # (..., E)

    def predict(self, z: torch.Tensor, action_embeddings: torch.Tensor) -> torch.Tensor:
        """Teacher-forced prediction: (B, T, D), (B, T, E) -> (B, T, D), output t ~ z_{t+1}."""
        return self.pred_projector(self.predictor(z, action_embeddings))

    def rollout(
        self,
        z0: torch.Tensor,
        actions: torch.Tensor,
        past_latents: torch.Tensor | None = None,
        past_actions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Autoregressive latent rollout, optionally from an observation history.

        Args:
            z0: (S, D) start embeddings.
            actions: (S, H, action_block * A) env-space action blocks.
            past_latents: (S, C, D) embeddings of the C block-boundary observations before
                ``z0``, oldest first (a model with ``history`` > 1 conditions on up to
                ``history - 1`` of them; without, the window repeats ``z0``, as in training
                at a sequence start).
            past_actions: (S, C, action_block * A) the blocks executed after each of them
                (the last one led to ``z0``); required with ``past_latents``.

        Returns:
            (S, H + 1, D) embeddings, index 0 being ``z0``.

        In eval mode the residual-MLP predictor runs fused (:mod:`lewm_mpc.models.fused_rollout`:
        same matmuls, fewer ops); otherwise each step calls :meth:`predict` on its window.
        """
        # An expanded (stride-0) start, as planners pass, would send the first step's matmul
        # down a slow path (15-25% of a 300-candidate rollout): materialize it once.
        z0 = z0.contiguous()
        context = self._context(z0, past_latents, past_actions)  # (S, C', D), C' <= history-1
        action_embeddings = self.embed_actions(actions)  # (S, H, E)
        fused = self._fused_steps.get(self.predictor, self.pred_projector)
        if fused is not None:
            return fused_mlp_rollout(fused, self.history, z0, action_embeddings,
                                     None if context is None else context[0])  # fmt: skip
        return self._rollout_by_predict(z0, action_embeddings, context)

    def _context(
        self, z0: torch.Tensor, past_latents: torch.Tensor | None, past_actions: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The last ``history - 1`` past latents and their embedded blocks, or None."""
        if past_latents is None and past_actions is None:
            return None
        if past_latents is None or past_actions is None:
            raise ValueError("past_latents and past_actions go together")
        num, dim = z0.shape
        if past_latents.ndim != 3 or past_latents.shape[0] != num or past_latents.shape[2] != dim:
            raise ValueError(
                f"past_latents must be (S={num}, C, D={dim}), got {tuple(past_latents.shape)}"
            )
        block = self.action_block * self.action_dim
        if past_actions.shape != (num, past_latents.shape[1], block):
            raise ValueError(
                f"past_actions must be (S={num}, C={past_latents.shape[1]}, {block}), got "
                f"{tuple(past_actions.shape)}"
            )
        keep = min(self.history - 1, past_latents.shape[1])
        if keep == 0:
            return None
        return (past_latents[:, -keep:].to(z0.dtype),
                self.embed_actions(past_actions[:, -keep:]))  # fmt: skip

    def _rollout_by_predict(
        self,
        z0: torch.Tensor,
        action_embeddings: torch.Tensor,
        context: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The unfused rollout: (S, D), (S, H, E) -> (S, H + 1, D), one :meth:`predict` a step,
        after the ``context`` (past latents (S, C, D), their embedded blocks (S, C, E))."""
        num, horizon = action_embeddings.shape[0], action_embeddings.shape[1]
        past = 0 if context is None else context[0].shape[1]
        latents = z0.new_empty(num, past + horizon + 1, z0.shape[-1])  # (S, C+H+1, D)
        if context is not None:
            latents[:, :past] = context[0]
            action_embeddings = torch.cat([context[1], action_embeddings], dim=1)  # (S, C+H, E)
        latents[:, past] = z0
        window = self.history
        for t in range(past, past + horizon):
            start = max(0, t + 1 - window)
            context_latents = latents[:, start : t + 1]  # (S, <=history, D)
            step = self.predict(context_latents, action_embeddings[:, start : t + 1])
            latents[:, t + 1] = step[:, -1]
        return latents[:, past:]

    def loss(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        sigreg_weight: float = 0.09,
        sigreg_config: SIGRegConfig | None = None,
        generator: torch.Generator | None = None,
        global_batch: bool = True,
        rollout_weight: float = 0.0,
    ) -> LossTerms:
        """LeWorldModel objective on a batch of windows.

        Args:
            obs: (B, T, *obs_shape) observations, T >= 2.
            actions: (B, T, action_block * A) env-space action blocks.
            sigreg_weight: lambda.
            sigreg_config: SIGReg quadrature/projection settings.
            generator: RNG for SIGReg's random directions.
            global_batch: under ``torch.distributed``, SIGReg over the batch of every process
                (the paper's statistic; each process must call this with the same directions
                RNG); False: over this process's batch only (e.g. validation on one process).
            rollout_weight: weight of an open-loop term: the predictor rolled out from each
                window's first embedding through its action blocks (feeding back its own
                predictions, as planning does), MSE against the encoded frames; 0 (LeWM's
                objective) skips it.
        """
        batch, steps = obs.shape[0], obs.shape[1]
        if steps < 2:
            raise ValueError(f"training windows need T >= 2 frames, got {steps}")
        flat = obs.reshape(batch * steps, *obs.shape[2:])  # (B*T, *obs_shape)
        z = self.encode(flat).reshape(batch, steps, -1)  # (B, T, D)
        predicted = self.predict(z[:, :-1], self.embed_actions(actions[:, :-1]))  # (B, T-1, D)
        # Under a reduced-precision autocast the networks ran in it; the losses do not.
        with torch.autocast(z.device.type, enabled=False):
            z, predicted = z.float(), predicted.float()
            prediction = (predicted - z[:, 1:]).pow(2).mean()
            regularizer = sigreg(
                z.transpose(0, 1), sigreg_config, generator, global_batch=global_batch
            )  # over (T, B, D)
        total = prediction + sigreg_weight * regularizer
        rollout = None
        if rollout_weight > 0:
            rolled = self._rollout_with_grad(z[:, 0], self.embed_actions(actions[:, :-1]))
            rollout = (rolled[:, 1:] - z[:, 1:]).pow(2).mean()  # over (B, T-1, D)
            total = total + rollout_weight * rollout
        return LossTerms(total, prediction, regularizer, z, rollout)

    def _rollout_with_grad(self, z0: torch.Tensor, action_embeddings: torch.Tensor) -> torch.Tensor:
        """:meth:`_rollout_by_predict` without in-place writes (autograd-safe): (B, D),
        (B, H, E) -> (B, H + 1, D)."""
        latents = [z0]
        for t in range(action_embeddings.shape[1]):
            start = max(0, t + 1 - self.history)
            window = torch.stack(latents[start : t + 1], dim=1)  # (B, <=history, D)
            latents.append(self.predict(window, action_embeddings[:, start : t + 1])[:, -1])
        return torch.stack(latents, dim=1)

    # ------------------------------------------------------------------------ persistence
    def save(self, path: str | Path, dtype: torch.dtype | None = None) -> Path:
        """Write ``model.safetensors`` + ``config.json`` (with :attr:`run_meta`) into ``path``.

        Args:
            path: Checkpoint directory (created if missing).
            dtype: Store the parameters in this floating dtype (e.g. ``torch.float16``, half the
                size); ``None`` keeps float32. :meth:`load` always returns float32.
        """
        return save_world_model(self, Path(path), dtype)

    @classmethod
    def from_lewm(cls, weights: str | Path, config: str | Path, **options: Any) -> WorldModel:
        """A LeWorldModel checkpoint (its ``weights.pt`` state_dict and ``config.json``) in
        the ``paper`` architecture, in eval mode; see
        :func:`lewm_mpc.models.lewm_import.load_lewm` for ``options`` (action block, bounds,
        action statistics, device). ``model.save(dir)`` then writes our checkpoint."""
        from lewm_mpc.models.lewm_import import load_lewm

        return load_lewm(weights, config, **options)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> WorldModel:
        """Load a checkpoint directory written by :meth:`save`, or a model shipped with the
        package by name, ``"pretrained:<env>"`` (:mod:`lewm_mpc.models.pretrained`); eval mode,
        no pickle. ``device`` may be ``"auto"`` (CUDA when available, else the CPU); a device
        that is not available here is a ValueError (:func:`~lewm_mpc.models.device.resolve_device`).
        """
        from lewm_mpc.models.device import resolve_device
        from lewm_mpc.models.pretrained import resolve_model_path

        device = resolve_device(device)  # before reading: an unavailable device fails fast
        directory = resolve_model_path(path)
        config, run_meta, tensors = read_checkpoint(directory)
        model = cls(config)
        restore_weights(model, tensors, directory)
        model.run_meta = run_meta
        return model.to(device).eval()

    def num_parameters(self) -> int:
        """Trainable parameter count."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
