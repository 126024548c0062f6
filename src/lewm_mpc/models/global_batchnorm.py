"""BatchNorm over the global batch of a multi-process run, on any device.

In training mode under ``torch.distributed`` with several processes, the batch statistics are
those of every process's batch together (one autograd-aware all-reduce of the sums of x and
x², in float64), so normalization, running statistics and gradients are what one
process computes on the concatenated batch. torch's ``SyncBatchNorm`` does the same but only
on GPUs; this one also runs on CPUs (gloo). Otherwise (one process, eval mode) it is
``nn.BatchNorm1d``, with the same parameters, buffers and state-dict keys.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from lewm_mpc.models.collectives import all_reduce_sum


class GlobalBatchNorm1d(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` on (N, C) input whose training statistics span every process."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if not (self.training and distributed):
            return super().forward(x)
        if x.ndim != 2:
            raise ValueError(f"GlobalBatchNorm1d expects (N, C) input, got {tuple(x.shape)}")
        # Every process passes the same batch size (data-parallel shards of one global batch).
        total = x.shape[0] * dist.get_world_size()
        if total < 2:
            raise ValueError("BatchNorm needs more than one sample over all processes")
        wide = x.double()  # one collective for both moments; float64 keeps E[x²] - E[x]² exact
        moments = all_reduce_sum(torch.cat([wide.sum(dim=0), wide.pow(2).sum(dim=0)]))  # (2C,)
        mean, mean_square = (moments / total).chunk(2)  # (C,), (C,)
        var = (mean_square - mean.pow(2)).clamp_min(0.0)  # biased
        if self.track_running_stats and self.running_mean is not None:
            self._update_running_stats(
                mean.detach().to(x.dtype), (var.detach() * total / (total - 1)).to(x.dtype)
            )
        out = (x - mean.to(x.dtype)) * torch.rsqrt(var + self.eps).to(x.dtype)
        if self.affine:
            out = out * self.weight + self.bias
        return out

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, unbiased_var: torch.Tensor) -> None:
        """What ``nn.BatchNorm1d`` does: momentum average, or the cumulative one (``None``)."""
        assert self.running_mean is not None and self.running_var is not None
        assert self.num_batches_tracked is not None
        self.num_batches_tracked.add_(1)
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
        self.running_var.mul_(1 - factor).add_(unbiased_var, alpha=factor)


__all__ = ["GlobalBatchNorm1d"]
