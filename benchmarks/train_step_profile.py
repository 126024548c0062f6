"""Where a training step spends its time: drawing the batch (CPU), copying it, the whole step.

For a dataset and a model preset, per precision: the mean time of ``WindowSampler.sample()``
(gathering the windows' frames on the CPU), of copying one batch of frames to the device, and
of ``Trainer.train_step()`` (which samples its own batch, runs forward and backward and steps
the optimizer), each over ``--steps`` repetitions after 3 warm-up steps, synchronized on a GPU.
If the step is much longer than sampling plus copy, the network, not the input path, sets the
training rate.

    PYTHONPATH=src python benchmarks/train_step_profile.py --data pusht224.h5 --device cuda
    MUJOCO_GL=egl .venv/bin/python benchmarks/train_step_profile.py --data d.h5 --config cpu \\
        --device cpu --steps 5

Writes ``<out>/train_step_profile_<config>.{json,md}``.
"""

from __future__ import annotations

import functools
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lewm_mpc.data import EpisodeDataset
from lewm_mpc.models import named_config
from lewm_mpc.training import TrainConfig
from lewm_mpc.training.config import model_config_for
from lewm_mpc.training.trainer import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _results.py beside this file
from _machine import machine_info, synchronize
from _results import write_results


@dataclass(frozen=True)
class Args:
    data: Path = Path("")
    config: str = "paper"  # model preset
    precisions: str = "bfloat16,float32"
    batch_size: int = 128
    steps: int = 20
    device: str = "cuda"
    out: Path = Path("benchmarks/results")


def _mean_seconds(action: Callable[[], object], repeats: int, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        action()
    synchronize(device)
    return (time.perf_counter() - start) / repeats


def measure(args: Args) -> list[dict[str, Any]]:
    dataset = EpisodeDataset.load(args.data)
    model_config = model_config_for(dataset, named_config(args.config), "pixels")
    rows = []
    for precision in args.precisions.split(","):
        config = TrainConfig(steps=1000, batch_size=args.batch_size, device=args.device,
                             precision=precision)  # fmt: skip
        with tempfile.TemporaryDirectory() as run_dir:  # nothing is saved: steps only
            trainer = Trainer(run_dir, dataset, model_config, config)
            for _ in range(3):
                trainer.train_step()
            sampler, device = trainer.train_sampler, trainer.device
            frames = sampler.sample().obs
            rows.append({
                "precision": precision,
                "batch_mb": frames.nbytes / 1e6,
                "sample_ms": 1000 * _mean_seconds(sampler.sample, args.steps, device),
                "copy_ms": 1000 * _mean_seconds(
                    functools.partial(torch.from_numpy(frames).to, device), args.steps, device),
                "step_ms": 1000 * _mean_seconds(trainer.train_step, args.steps, device),
            })  # fmt: skip
    return rows


def markdown(result: dict[str, Any]) -> str:
    args, machine = result["args"], result.get("device_machine") or result["machine"]
    lines = [
        f"A training step of the `{args['config']}` config, batch {args['batch_size']}, on "
        f"{machine['device_name']} ({result['machine']['cpu_threads']} CPU threads), mean of "
        f"{args['steps']} after 3 warm-up steps.",
        "",
        "| precision | batch of frames | draw the batch (CPU) | copy to the device | whole step |",
        "|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['precision']} | {row['batch_mb']:.0f} MB | {row['sample_ms']:.1f} ms | "
            f"{row['copy_ms']:.1f} ms | {row['step_ms']:.1f} ms |"
        )
    return "\n".join(lines) + "\n"


def main(args: Args) -> dict[str, Any]:
    if not args.data.is_file():
        raise SystemExit(f"--data must be a dataset .h5 file, got {str(args.data)!r}")
    device = machine_info(args.device) if args.device.startswith("cuda") else None
    return write_results(args.out, f"train_step_profile_{args.config}", args, measure(args),
                         markdown, device_machine=device)  # fmt: skip


if __name__ == "__main__":
    from _cli import parse_args  # beside this script

    main(parse_args(Args, __doc__))
