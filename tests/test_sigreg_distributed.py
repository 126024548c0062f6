"""SIGReg on the global batch under torch.distributed (gloo, CPU): two processes give the loss
and the gradients one process gets on the concatenated batch; the per-rank statistic does not."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lewm_mpc.models.sigreg import SIGRegConfig, random_directions, sigreg

CONFIG = SIGRegConfig(num_projections=32)
BATCH, DIM = 16, 6


def problem() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(BATCH, DIM, generator=generator)
    weight = torch.randn(DIM, DIM, generator=generator) * 0.5 + torch.eye(DIM)
    directions = random_directions(DIM, CONFIG.num_projections, torch.Generator().manual_seed(1))
    return inputs, weight, directions


def loss_and_grad(inputs, weight, directions, global_batch=True):
    weight = weight.clone().requires_grad_(True)
    loss = sigreg(inputs @ weight, CONFIG, directions=directions, global_batch=global_batch)
    (grad,) = torch.autograd.grad(loss, [weight])
    return loss.detach(), grad


def worker(rank: int, world: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        inputs, weight, directions = problem()
        shard = inputs.chunk(world)[rank]
        results = {}
        for name, global_batch in (("global", True), ("per_rank", False)):
            loss, grad = loss_and_grad(shard, weight, directions, global_batch)
            dist.all_reduce(grad)  # what data-parallel training does: the mean over ranks
            grad /= world
            dist.all_reduce(loss)
            results[name] = (loss / world, grad)
        if rank == 0:
            torch.save(results, out)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built in")
def test_two_processes_match_one_on_the_concatenated_batch(tmp_path):
    init = f"file://{tmp_path / 'rendezvous'}"  # a file that does not exist yet
    out = str(tmp_path / "results.pt")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(worker, args=(2, init, out), nprocs=2, join=True)
    results = torch.load(out, weights_only=True)
    expected_loss, expected_grad = loss_and_grad(*problem())
    loss, grad = results["global"]
    torch.testing.assert_close(loss, expected_loss, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad, expected_grad, atol=1e-5, rtol=1e-5)
    naive_loss, naive_grad = results["per_rank"]
    assert not torch.allclose(naive_loss, expected_loss, atol=1e-3, rtol=1e-3)
    assert not torch.allclose(naive_grad, expected_grad, atol=1e-3, rtol=1e-3)


def test_outside_distributed_the_global_statistic_is_the_local_one():
    inputs, weight, directions = problem()
    local = sigreg(inputs @ weight, CONFIG, directions=directions, global_batch=False)
    assert torch.equal(sigreg(inputs @ weight, CONFIG, directions=directions), local)
