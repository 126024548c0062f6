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
    PYTHONPATH=src python benchmarks/train_step_profile.py --data pusht224.h5 --device cuda \\
        --precisions bfloat16 --compile false,true --prefetch false,true --tag compile

Writes ``<out>/train_step_profile_<config>[_<tag>].{json,md}``.
"""

from __future__ import annotations

import functools
import itertools
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
    compile: str = "false"  # comma-separated: false (eager), true (torch.compile), or both
    prefetch: str = "true"  # comma-separated: false, true (the next batch drawn during a step)
    batch_size: int = 128
    steps: int = 20
    device: str = "cuda"
    out: Path = Path("benchmarks/results")
    tag: str = ""  # output name suffix: train_step_profile_<config>_<tag>


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
    modes = {"false": False, "true": True}
    for name in ("compile", "prefetch"):
        if not set(getattr(args, name).split(",")) <= set(modes):
            raise SystemExit(f"--{name}: false, true or false,true, got {getattr(args, name)!r}")
    for precision, compiled, prefetch in itertools.product(
        args.precisions.split(","), *([modes[m] for m in getattr(args, name).split(",")]
                                      for name in ("compile", "prefetch"))
    ):  # fmt: skip
        config = TrainConfig(steps=1000, batch_size=args.batch_size, device=args.device,
                             precision=precision, compile=compiled, prefetch=prefetch)  # fmt: skip
        with tempfile.TemporaryDirectory() as run_dir:  # nothing is saved: steps only
            trainer = Trainer(run_dir, dataset, model_config, config)
            started = time.perf_counter()
            for _ in range(3):  # compiled: the first steps compile
                trainer.train_step()
            warmup_s = time.perf_counter() - started
            trainer.prefetcher.discard()  # no draw ahead in flight while sampling directly
            sampler, device = trainer.train_sampler, trainer.device
            frames = sampler.sample().obs
            rows.append({
                "precision": precision,
                "compile": compiled,
                "prefetch": prefetch,
                "warmup_s": warmup_s,
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
        "| precision | torch.compile | next batch drawn during the step | batch of frames | "
        "draw the batch (CPU) | copy to the device | whole step | 3 warm-up steps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['precision']} | {'yes' if row.get('compile') else 'no'} | "
            f"{ {True: 'yes', False: 'no'}.get(row.get('prefetch'), '-') } | "
            f"{row['batch_mb']:.0f} MB | {row['sample_ms']:.1f} ms | {row['copy_ms']:.1f} ms | "
            f"{row['step_ms']:.1f} ms | "
            + (f"{row['warmup_s']:.1f} s |" if "warmup_s" in row else "- |")
        )
    return "\n".join(lines) + "\n"


def main(args: Args) -> dict[str, Any]:
    if not args.data.is_file():
        raise SystemExit(f"--data must be a dataset .h5 file, got {str(args.data)!r}")
    device = machine_info(args.device) if args.device.startswith("cuda") else None
    name = f"train_step_profile_{args.config}" + (f"_{args.tag}" if args.tag else "")
    return write_results(args.out, name, args, measure(args),
                         markdown, device_machine=device)  # fmt: skip


if __name__ == "__main__":
    from _cli import parse_args  # beside this script

    main(parse_args(Args, __doc__))
