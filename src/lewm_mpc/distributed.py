"""Multi-process training on torch.distributed: the process group, collectives the trainer
needs, and the ``--nproc`` launcher.

A training run with ``N`` processes is started by torch's own launcher::

    torchrun --standalone --nproc_per_node=N -m lewm_mpc train --data D --out RUN
    lewm-mpc train --data D --out RUN --nproc N        # the same, launched for you

Each process finds its rank in the environment torchrun sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``); :func:`init_from_environment` joins the
group (gloo on CPU, NCCL on CUDA). Outside torchrun everything here is a no-op for one process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

WORLD_SIZE_VARIABLE = "WORLD_SIZE"


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place in the training job.

    Attributes:
        rank: global rank, 0 ... world_size - 1 (rank 0 writes checkpoints and logs).
        world_size: number of processes.
        local_rank: rank on this machine (picks the GPU).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this process writes checkpoints, logs and progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1


def active() -> bool:
    """Whether a torch.distributed group with more than one process is initialized."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def current() -> ProcessGroup:
    """The initialized group's place of this process; one process when none is initialized."""
    if not active():
        return ProcessGroup()
    local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return ProcessGroup(dist.get_rank(), dist.get_world_size(), local)


def requested_world_size() -> int:
    """``WORLD_SIZE`` set by torchrun (1 when absent)."""
    value = os.environ.get(WORLD_SIZE_VARIABLE, "1")
    try:
        size = int(value)
    except ValueError:
        raise ValueError(f"{WORLD_SIZE_VARIABLE}={value!r} is not an integer") from None
    if size < 1:
        raise ValueError(f"{WORLD_SIZE_VARIABLE} must be >= 1, got {size}")
    return size


def init_from_environment(device: str = "auto") -> bool:
    """Join the process group torchrun describes in the environment, if it describes one of
    more than one process and none is initialized yet.

    Args:
        device: the training device setting; CUDA devices use NCCL, the CPU gloo.

    Returns:
        True if this call initialized the group (the caller then destroys it with
        :func:`shutdown`).
    """
    if requested_world_size() == 1 or not dist.is_available() or dist.is_initialized():
        return False
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")
    return True


def shutdown() -> None:
    """Leave the process group (after a barrier, so no process exits while others wait)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def device_for(device: torch.device, group: ProcessGroup) -> torch.device:
    """One GPU per process: ``cuda`` becomes ``cuda:<local_rank>`` under several processes."""
    if group.distributed and device.type == "cuda" and device.index is None:
        return torch.device("cuda", group.local_rank)
    return device


def step_summary(values: Mapping[str, float], flag: bool) -> tuple[dict[str, float], bool]:
    """In one collective: each value averaged over the processes, and whether ``flag`` is True
    on any of them (e.g. an interrupt one received). For one process: the inputs."""
    if not active():
        return dict(values), flag
    names = sorted(values)
    tensor = torch.tensor([float(values[name]) for name in names] + [float(flag)],
                          dtype=torch.float64)  # fmt: skip
    dist.all_reduce(tensor)
    means = (tensor[:-1] / dist.get_world_size()).tolist()
    return dict(zip(names, means, strict=True)), bool(tensor[-1].item() > 0)


def gather_objects(value: Any) -> list[Any]:
    """Every process's ``value`` (picklable), in rank order; ``[value]`` for one process."""
    if not active():
        return [value]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def barrier() -> None:
    """Wait for every process (nothing for one)."""
    if active():
        dist.barrier()


def launch_command(nproc: int, argv: Sequence[str]) -> list[str]:
    """The torchrun command that runs ``lewm-mpc <argv>`` in ``nproc`` local processes."""
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={nproc}", "-m", "lewm_mpc", *argv,
    ]  # fmt: skip


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``lewm-mpc <argv>`` in ``nproc`` local processes (torchrun); returns the exit code.

    Each process gets ``OMP_NUM_THREADS`` = cores / nproc unless it is set.
    """
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    return subprocess.call(launch_command(nproc, argv), env=env)


__all__ = [
    "ProcessGroup",
    "active",
    "barrier",
    "current",
    "device_for",
    "gather_objects",
    "init_from_environment",
    "launch",
    "launch_command",
    "requested_world_size",
    "shutdown",
    "step_summary",
]
