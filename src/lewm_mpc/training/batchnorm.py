"""BatchNorm calibration: running statistics recomputed for the current weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from lewm_mpc import distributed
from lewm_mpc.data import WindowSampler
from lewm_mpc.data.windows import WindowBatch
from lewm_mpc.models.jepa import WorldModel


class _BatchSource(Protocol):
    def sample(self) -> WindowBatch: ...


@dataclass(frozen=True)
class _ProcessSlice:
    """This process's slice of each batch a sampler draws alike in every process."""

    sampler: WindowSampler
    group: distributed.ProcessGroup

    def sample(self) -> WindowBatch:
        batch = self.sampler.sample()
        size = batch.obs.shape[0] // self.group.world_size
        part = slice(self.group.rank * size, (self.group.rank + 1) * size)
        return WindowBatch(batch.obs[part], batch.actions[part], batch.rows[part])


@torch.no_grad()
def calibrate_batchnorm(model: WorldModel, sampler: _BatchSource, batches: int) -> None:
    """Recompute every BatchNorm's running statistics as the plain average over ``batches``
    training batches (train-mode forward passes without gradients or dropout).

    The momentum averages that training leaves lag behind the weights; when the embedding
    statistics move quickly (a high learning rate), eval mode, which planning uses, normalizes
    with stale statistics and predicts badly. The global torch RNG is left untouched.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or batches < 1:
        return
    was_training = model.training
    momenta = [norm.momentum for norm in norms]
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[]):
        for _ in range(batches):
            batch = sampler.sample()
            obs = torch.as_tensor(batch.obs, device=device)  # (B, T, *obs_shape)
            flat = obs.reshape(obs.shape[0] * obs.shape[1], *obs.shape[2:])  # (B*T, *obs)
            z = model.encode(flat).reshape(obs.shape[0], obs.shape[1], -1)  # (B, T, D)
            actions = torch.as_tensor(batch.actions, device=device)
            model.predict(z[:, :-1], model.embed_actions(actions[:, :-1]))
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    model.train(was_training)
