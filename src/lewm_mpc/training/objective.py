"""The training objective as a module (for DistributedDataParallel), and per-process seeds."""

from __future__ import annotations

import numpy as np
import torch

from lewm_mpc import distributed
from lewm_mpc.models.jepa import WorldModel
from lewm_mpc.models.sigreg import SIGRegConfig


class _Objective(torch.nn.Module):
    """The training loss as a module's forward, so DistributedDataParallel can wrap it: the
    world model's, plus ``state_weight`` x the state head's MSE when there is a head."""

    def __init__(
        self,
        model: WorldModel,
        weight: float,
        config: SIGRegConfig,
        generator: torch.Generator,
        state_head: torch.nn.Linear | None = None,
        state_weight: float = 0.0,
        rollout_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.model, self.state_head = model, state_head
        self.weight, self.config, self.generator = weight, config, generator
        self.state_weight, self.rollout_weight = state_weight, rollout_weight

    def forward(
        self, obs: torch.Tensor, actions: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        terms = self.model.loss(obs, actions, self.weight, self.config, self.generator,
                                rollout_weight=self.rollout_weight)  # fmt: skip
        state = terms.total.new_zeros(())
        if self.state_head is not None and targets is not None:
            assert terms.latents is not None
            state = (self.state_head(terms.latents) - targets).pow(2).mean()  # over (B, T, F)
        return terms.total + self.state_weight * state, terms.prediction, terms.sigreg, state


def _shard_seed(seed: int, group: distributed.ProcessGroup, step: int) -> int:
    """Sampler seed of one process: the run seed for one process from the start (as before
    multi-process training existed), else a hash of (seed, processes, rank, step)."""
    if not group.distributed and step == 0:
        return seed
    sequence = np.random.SeedSequence([seed, group.world_size, group.rank, step])
    return int(sequence.generate_state(1)[0])
