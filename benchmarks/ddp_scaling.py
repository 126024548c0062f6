"""Training throughput at 1 and N processes (torch.distributed, gloo on CPUs).

Each setting trains the default CPU model on the same small Two-Room dataset with the default
global batch (64 windows), in fresh processes: 1 process with 1 thread, 1 process with all
threads, N processes with one thread each (data-parallel: N shards of the batch, gradients
averaged, SIGReg and BatchNorm on the global batch). After ``--warmup`` steps, ``--steps``
optimizer steps are timed; settings are interleaved over ``--rounds`` rounds (machines drift)
and the median round is reported.

    .venv/bin/python benchmarks/ddp_scaling.py            # writes results/ddp_scaling.{json,md}
    .venv/bin/python benchmarks/ddp_scaling.py --smoke    # seconds, results under runs/

On GPUs the same training runs with NCCL: ``torchrun --nproc_per_node=8 -m lewm_mpc train ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from _machine import cpu_model_name

from lewm_mpc.atomic import write_text_atomic


@dataclass(frozen=True)
class Setting:
    """How one measurement trains."""

    processes: int
    threads: int

    @property
    def label(self) -> str:
        processes = "processes" if self.processes > 1 else "process"
        threads = "threads" if self.threads > 1 else "thread"
        return f"{self.processes} {processes} x {self.threads} {threads}"


def _measure(args: argparse.Namespace) -> None:
    """One process of a measurement (started by :func:`measure`, under torchrun for several)."""
    import torch

    from lewm_mpc import distributed
    from lewm_mpc.data import EpisodeDataset
    from lewm_mpc.models import WorldModelConfig
    from lewm_mpc.training import TrainConfig, Trainer, model_config_for

    torch.set_num_threads(args.threads)
    joined = distributed.init_from_environment("cpu")
    try:
        dataset = EpisodeDataset.load(args.measure)
        config = model_config_for(dataset, WorldModelConfig(), "pixels")
        with tempfile.TemporaryDirectory() as run:
            train = TrainConfig(steps=args.warmup + args.steps, device="cpu")
            trainer = Trainer(run, dataset, config, train)
            for _ in range(args.warmup):
                trainer.train_step()
            distributed.barrier()
            started = time.perf_counter()
            for _ in range(args.steps):
                trainer.train_step()
            seconds = time.perf_counter() - started
        if distributed.current().is_main:
            Path(args.result).write_text(json.dumps({"seconds": seconds}))
    finally:
        if joined:
            distributed.shutdown()


def measure(setting: Setting, data: Path, steps: int, warmup: int) -> float:
    """Seconds per optimizer step of ``setting``, in fresh processes."""
    from lewm_mpc.distributed import launch_command

    with tempfile.TemporaryDirectory() as folder:
        result = Path(folder) / "result.json"
        worker = [__file__, "--measure", str(data), "--result", str(result), "--steps", str(steps),
                  "--warmup", str(warmup), "--threads", str(setting.threads)]  # fmt: skip
        if setting.processes > 1:  # torchrun's command with this script instead of lewm-mpc
            command = launch_command(setting.processes, [])[:-2] + worker
        else:
            command = [sys.executable, *worker]
        env = {**os.environ, "OMP_NUM_THREADS": str(setting.threads)}
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
        return json.loads(result.read_text())["seconds"] / steps


def markdown(result: dict) -> str:
    lines = [
        "# Training throughput at 1 and N processes",
        "",
        f"{result['machine']}; default CPU model ({result['parameters']}), global batch "
        f"{result['batch_size']} windows of {result['num_frames']} frames, {result['steps']} timed "
        f"steps after {result['warmup']}, median of {result['rounds']} interleaved rounds.",
        "",
        "| setting | s/step | windows/s | speed-up vs 1 process x 1 thread |",
        "|---|---|---|---|",
    ]
    base = result["rows"][0]["seconds_per_step"]
    for row in result["rows"]:
        per_step = row["seconds_per_step"]
        lines.append(
            f"| {row['label']} | {per_step:.3f} | {result['batch_size'] / per_step:.0f} | "
            f"{base / per_step:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("runs/ddp_scaling"))
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results")
    parser.add_argument("--episodes", type=int, default=40, help="Two-Room episodes of 100 steps")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # worker: dataset
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure is not None:
        _measure(args)
        return
    if args.smoke:
        args.steps, args.warmup, args.rounds, args.episodes = 2, 1, 1, 4
    out = args.out or (args.work if args.smoke else Path("benchmarks/results"))
    os.environ.setdefault("MUJOCO_GL", "egl")
    from lewm_mpc.data import EpisodeDataset
    from lewm_mpc.data.collection import collect_dataset
    from lewm_mpc.models import WorldModel, WorldModelConfig
    from lewm_mpc.training import TrainConfig, model_config_for

    args.work.mkdir(parents=True, exist_ok=True)
    data = collect_dataset("tworoom", args.work / f"tworoom-{args.episodes}ep.h5", args.episodes,
                           100, seed=0)  # fmt: skip
    cores = os.cpu_count() or 1
    settings = [Setting(1, 1), Setting(1, args.processes), Setting(args.processes, 1)]
    times: dict[Setting, list[float]] = {setting: [] for setting in settings}
    for round_index in range(args.rounds):
        for setting in settings:
            times[setting].append(measure(setting, data, args.steps, args.warmup))
            print(f"round {round_index + 1}: {setting.label}: "
                  f"{times[setting][-1]:.3f} s/step", flush=True)  # fmt: skip
    train = TrainConfig()
    config = model_config_for(EpisodeDataset.load(data), WorldModelConfig(), "pixels")
    result = {
        "machine": f"{cores}-core CPU ({cpu_model_name()})",
        "cores": cores,
        "parameters": f"{WorldModel(config).num_parameters() / 1e6:.2f}M parameters",
        "batch_size": train.batch_size,
        "num_frames": train.num_frames,
        "steps": args.steps,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "rows": [
            {
                **asdict(s),
                "label": s.label,
                "seconds_per_step": statistics.median(times[s]),
                "all_rounds": times[s],
            }
            for s in settings
        ],
    }
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "ddp_scaling.json", json.dumps(result, indent=1))
    table = markdown(result)
    write_text_atomic(out / "ddp_scaling.md", table)
    print(table)


if __name__ == "__main__":
    main()
