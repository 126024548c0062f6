"""Multi-process training (gloo, CPU): the objective is the one-process objective on the
concatenated batch, a run resumes bit-identically on the same number of processes and on any
other number, and ``lewm-mpc train --nproc`` launches it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file

from conftest import tiny_config
from lewm_mpc import WorldModel
from lewm_mpc.cli import _without_nproc
from lewm_mpc.data import EpisodeDataset, WindowSampler
from lewm_mpc.distributed import launch_command
from lewm_mpc.models.run_dir import checkpoint_dir
from lewm_mpc.training import TrainConfig, Trainer, model_config_for

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built in")

FAST = dict(
    batch_size=8,
    num_frames=3,
    val_every=4,
    val_batches=2,
    checkpoint_every=2,
    sigreg_projections=32,
    warmup_steps=2,
    bn_calibration_batches=2,
)
WORLD = 2


def _trainer(data: Path, run: Path, steps: int) -> Trainer:
    dataset = EpisodeDataset.load(data)
    config = model_config_for(dataset, tiny_config(), "pixels")
    return Trainer(run, dataset, config, TrainConfig(steps=steps, **FAST))


def _fixed_batch(data: Path):
    dataset = EpisodeDataset.load(data)
    block = tiny_config().action_block // dataset.action_block  # rows per model step
    sampler = WindowSampler(dataset, dataset.split(0.1)[0], 3, block, 8, "pixels", seed=123)
    batch = sampler.sample()
    return torch.from_numpy(batch.obs), torch.from_numpy(batch.actions)


def _objective_and_grads(trainer: Trainer, obs, actions):
    trainer.model.train()
    total = trainer.objective(obs, actions)[0]
    total.backward()
    grads = {name: p.grad.clone() for name, p in trainer.model.named_parameters()}
    buffers = {name: b.clone() for name, b in trainer.model.named_buffers()}
    return total.detach(), grads, buffers


def _worker(rank: int, init: str, data: str, tmp: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    try:
        data_path, folder = Path(data), Path(tmp)
        # 1. One step on this process's half of a fixed batch.
        obs, actions = _fixed_batch(data_path)
        part = slice(rank * 4, rank * 4 + 4)
        trainer = _trainer(data_path, folder / "unused", 1)
        total, grads, buffers = _objective_and_grads(trainer, obs[part], actions[part])
        dist.all_reduce(total)  # the logged loss: mean over processes
        if rank == 0:
            torch.save({"loss": total / WORLD, "grads": grads, "buffers": buffers},
                       folder / "step.pt")  # fmt: skip
        # 2. An uninterrupted 6-step run, and one stopped after 3 steps and resumed.
        _trainer(data_path, folder / "whole", 6).fit(progress=False)
        stopped = _trainer(data_path, folder / "resumed", 6)
        for _ in range(3):
            stopped.train_step()
        stopped.save()
        _trainer(data_path, folder / "resumed", 6).fit(progress=False)
    finally:
        dist.destroy_process_group()


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint_dir(run) / "model.safetensors"))


@pytest.fixture(scope="module")
def two_process_runs(tiny_dataset, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ddp")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    init = f"file://{folder / 'rendezvous'}"
    mp.spawn(_worker, args=(init, str(tiny_dataset), str(folder)), nprocs=WORLD, join=True)
    return folder


def test_two_processes_optimize_the_one_process_objective(two_process_runs, tiny_dataset, tmp_path):
    """Loss, every parameter's gradient and the BatchNorm statistics match one process on the
    concatenated batch: SIGReg and the projectors' BatchNorm span the global batch."""
    two = torch.load(two_process_runs / "step.pt", weights_only=True)
    obs, actions = _fixed_batch(tiny_dataset)
    loss, grads, buffers = _objective_and_grads(_trainer(tiny_dataset, tmp_path, 1), obs, actions)
    torch.testing.assert_close(two["loss"], loss, atol=1e-5, rtol=1e-5)
    assert grads.keys() == two["grads"].keys()
    # float32 round-off through the BatchNorm backward reaches ~1e-4 of the encoder's
    # gradients; the per-process objective (below) is off by orders of magnitude more.
    for name, grad in grads.items():
        torch.testing.assert_close(two["grads"][name], grad, atol=2e-4, rtol=1e-3, msg=name)
    for name, buffer in buffers.items():
        torch.testing.assert_close(two["buffers"][name], buffer, atol=1e-5, rtol=1e-5, msg=name)
    # The naive alternative: each half on its own (per-process SIGReg and BatchNorm), averaged.
    halves = [
        _objective_and_grads(_trainer(tiny_dataset, tmp_path / str(i), 1), o, a)
        for i, (o, a) in enumerate(zip(obs.chunk(2), actions.chunk(2), strict=True))
    ]
    naive_loss = sum(half[0] for half in halves) / 2
    assert abs(naive_loss - loss) > 1e-2
    naive = {name: sum(half[1][name] for half in halves) / 2 for name in grads}
    worst = max((naive[n] - grads[n]).abs().max().item() for n in grads)
    assert worst > 1e-2


def test_a_two_process_run_resumes_bit_identically(two_process_runs):
    whole, resumed = _weights(two_process_runs / "whole"), _weights(two_process_runs / "resumed")
    assert whole.keys() == resumed.keys()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    lines = (two_process_runs / "whole" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == list(range(1, 7))  # rank 0 only


def test_a_two_process_run_resumes_on_one_process(two_process_runs, tiny_dataset, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(two_process_runs / "whole", run)
    before = _weights(run)
    summary = _trainer(tiny_dataset, run, 8).fit(progress=False)
    assert summary.steps == 8
    after = _weights(run)
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it trained further
    assert WorldModel.load(run).run_meta.step == 8


def test_a_batch_the_processes_cannot_share_is_refused(tiny_dataset, tmp_path, monkeypatch):
    from lewm_mpc import distributed

    monkeypatch.setattr(distributed, "current", lambda: distributed.ProcessGroup(0, 3, 0))
    with pytest.raises(ValueError, match="batch_size 8 must be a multiple of the 3 processes"):
        _trainer(tiny_dataset, tmp_path / "run", 1)


def test_nproc_launches_torchrun_with_the_other_arguments():
    argv = ["train", "--data", "d.h5", "--nproc", "2", "--out", "r", "--nproc=3"]
    assert _without_nproc(argv) == ["train", "--data", "d.h5", "--out", "r"]
    command = launch_command(2, ["train", "--data", "d.h5"])
    assert command[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    assert command[-4:] == ["lewm_mpc", "train", "--data", "d.h5"]


def test_cli_nproc_2_trains_a_run_that_loads(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "lewm_mpc", "train", "--data", str(tiny_dataset),
               "--out", str(run), "--steps", "3", "--batch-size", "8", "--nproc", "2"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("model: ") == 1  # one summary line, not one per process
    assert WorldModel.load(run).run_meta.step == 3
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3]
