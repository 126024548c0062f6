"""Autograd-aware collectives for losses over the global batch of a multi-process run.

Each process computes the same statistic on the gathered (or summed) tensors; the backward
pass returns to each process the gradient of its own contribution summed over the processes,
so that data-parallel training, which averages parameter gradients over the processes, yields
the gradient of the mean of the per-process losses. Works on every backend (gloo included).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


class _AllGather(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor, dim: int) -> torch.Tensor:
        ctx.dim, ctx.size = dim, tensor.shape[dim]
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=dim)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)  # every process's gradient of the gathered batch, summed
        start = dist.get_rank() * ctx.size
        return grad.narrow(ctx.dim, start, ctx.size), None


class _AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        total = grad.contiguous().clone()
        dist.all_reduce(total)
        return total


def all_gather(tensor: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Every process's ``tensor`` concatenated along ``dim`` in rank order, differentiable;
    all processes must pass the same shape."""
    return _AllGather.apply(tensor, dim)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of every process's ``tensor``, differentiable."""
    return _AllReduceSum.apply(tensor)


__all__ = ["all_gather", "all_reduce_sum"]
