"""LeWorldModel's architecture (``--config paper``) trained and planned on one GPU, in minutes.

The pipeline a GPU user runs, end to end, under a wall-clock budget: collect expert-style
data at 224 px in blocks of 5 env steps (LeWorldModel's frameskip) on every CPU core, train
the ``paper`` config (ViT-tiny/14, AdaLN predictor, history 3) in bfloat16 mixed precision,
and evaluate CEM 300 x 30 on 50 pairs from the dataset's held-out episodes. Beside it, on
the same GPU at the same time, the default ``cpu`` config at 64 px on its own dataset, for
the same minutes, evaluated on its own held-out pairs.

The number of training steps is set from a measured rate: each config first trains 200 steps
on a small probe dataset (while the main datasets are collected), and its main run gets
``rate x --train-minutes`` steps, so the learning-rate schedule ends when the budget does.

    PYTHONPATH=src python benchmarks/paper_gpu.py --out runs/paper_gpu          # a GPU
    PYTHONPATH=src python benchmarks/paper_gpu.py --smoke true --out /tmp/pg    # CPU, seconds

Writes ``<results>/paper_gpu_<env>.{json,md}`` and keeps the runs and logs under ``--out``
(the ``cpu`` model's checkpoint is small enough to evaluate elsewhere).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _results.py beside this file
from _machine import machine_info
from _results import write_results


@dataclass(frozen=True)
class Args:
    env: str = "pusht"
    episodes: int = 2000  # main dataset of the paper config (224 px)
    cpu_episodes: int = 2000  # main dataset of the cpu config (64 px)
    steps: int = 200  # env steps per episode
    probe_episodes: int = 64
    probe_steps: int = 200  # training steps that measure each config's rate (its fixed costs,
    # the final validation and BatchNorm calibration, make the rate of a short probe low)
    workers: int = 0  # collection processes per dataset (0: half the CPU cores each)
    train_minutes: float = 4.0
    batch_size: int = 128
    lr: float = 2e-4  # paper config (LeWorldModel: 5e-5 over ~10 epochs)
    pairs: int = 50
    eval_seed: int = 1
    device: str = "cuda"
    smoke: bool = False  # tiny sizes on a CPU: checks the pipeline, its numbers mean nothing
    out: Path = Path("runs/paper_gpu")
    results: Path = Path("benchmarks/results")


SMOKE_EVAL = ("--samples", "8", "--iterations", "2", "--topk", "2", "--budget", "5",
              "--goal-offset", "5")  # fmt: skip
SMOKE = dict(episodes=8, cpu_episodes=8, steps=40, probe_episodes=4, probe_steps=2,
             train_minutes=0.05, batch_size=4, pairs=1, device="cpu")  # fmt: skip


@dataclass(frozen=True)
class Config:
    """One model of the comparison: its preset, pixels, frameskip and training settings."""

    name: str
    image_size: int
    action_block: int
    extra: tuple[str, ...]  # further ``lewm-mpc train`` flags


CONFIGS = (
    Config("paper", 224, 5, ("--config", "paper", "--precision", "bfloat16")),
    Config("cpu", 64, 1, ("--config", "cpu")),
)


def _episodes(args: Args, config: Config) -> int:
    return args.episodes if config.name == "paper" else args.cpu_episodes


def _cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "lewm_mpc", *argv]


def _start(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _wait(process: subprocess.Popen[bytes], log: Path) -> None:
    if process.wait() != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(map(str, process.args))} failed:\n{tail}")


def _collect(args: Args, config: Config, episodes: int, seed: int, out: Path) -> list[str]:
    workers = args.workers or max(1, (os.cpu_count() or 2) // 2)
    return _cli("collect", args.env, "--out", str(out), "--episodes", str(episodes),
                "--steps", str(args.steps), "--seed", str(seed), "--workers", str(workers),
                "--action-block", str(config.action_block),
                "--image-size", str(config.image_size))  # fmt: skip


def _train(args: Args, config: Config, data: Path, run: Path, steps: int) -> list[str]:
    lr = ("--lr", str(args.lr)) if config.name == "paper" else ()
    return _cli("train", "--data", str(data), "--out", str(run), "--steps", str(steps),
                "--batch-size", str(args.batch_size), "--device", args.device,
                *lr, *config.extra)  # fmt: skip


def _checkpoint_meta(run: Path) -> dict[str, Any]:
    newest = sorted((run / "checkpoints").iterdir())[-1]
    return json.loads((newest / "config.json").read_text())["run_meta"]


def measure(args: Args, save: Callable[[list[dict[str, Any]]], object]) -> None:
    """Run the pipeline; ``save(rows)`` after the training and after each evaluation."""
    out = args.out
    logs = out / "logs"
    start = time.perf_counter()
    # 1. probes, then their rates, while the main datasets are collected
    main_data = {c.name: out / f"{c.name}-data.h5" for c in CONFIGS}
    collecting = {
        c.name: _start(_collect(args, c, _episodes(args, c), seed=1, out=main_data[c.name]),
                       logs / f"collect-{c.name}.log")
        for c in CONFIGS
    }  # fmt: skip
    rates: dict[str, float] = {}
    for config in CONFIGS:
        probe_data, probe_run = out / f"{config.name}-probe.h5", out / f"{config.name}-probe-run"
        log = logs / f"probe-{config.name}.log"
        _wait(_start(_collect(args, config, args.probe_episodes, 2, probe_data), log), log)
        _wait(_start(_train(args, config, probe_data, probe_run, args.probe_steps), log), log)
        meta = _checkpoint_meta(probe_run)
        rates[config.name] = meta["step"] / meta["train_seconds"]  # steps per second
    collected = time.perf_counter()
    for name, process in collecting.items():
        _wait(process, logs / f"collect-{name}.log")
    collect_seconds = time.perf_counter() - start
    # 2. both main runs at once, each for the budget at its measured rate
    budget = 60 * args.train_minutes
    steps = {c.name: max(args.probe_steps, int(rates[c.name] * budget)) for c in CONFIGS}
    runs = {c.name: out / f"{c.name}-run" for c in CONFIGS}
    training = {
        c.name: _start(_train(args, c, main_data[c.name], runs[c.name], steps[c.name]),
                       logs / f"train-{c.name}.log")
        for c in CONFIGS
    }  # fmt: skip
    for name, process in training.items():
        _wait(process, logs / f"train-{name}.log")
    rows = [
        {
            "config": c.name,
            "image_size": c.image_size,
            "action_block": c.action_block,
            "episodes": _episodes(args, c),
            "train_steps": _checkpoint_meta(runs[c.name])["step"],
            "train_minutes": _checkpoint_meta(runs[c.name])["train_seconds"] / 60,
            "steps_per_second_probe": rates[c.name],
            "report": None,
        }
        for c in CONFIGS
    ]
    rows[0]["collect_minutes"] = collect_seconds / 60
    rows[0]["probe_minutes"] = (collected - start) / 60
    save(rows)  # the training numbers survive an evaluation cut short
    # 3. both evaluations at once, on their own held-out pairs
    reports = {c.name: out / f"eval-{c.name}.json" for c in CONFIGS}
    evaluating = {
        c.name: _start(_cli("eval", "--model", str(runs[c.name]), "--pairs", str(args.pairs),
                            "--eval-seed", str(args.eval_seed), "--device", args.device,
                            "--out", str(reports[c.name]), *(SMOKE_EVAL if args.smoke else ())),
                       logs / f"eval-{c.name}.log")
        for c in CONFIGS
    }  # fmt: skip
    for row, (name, process) in zip(rows, evaluating.items(), strict=True):
        _wait(process, logs / f"eval-{name}.log")
        row["report"] = json.loads(reports[name].read_text())
        row["report"].pop("pairs", None)  # per-pair records stay in the eval report
        save(rows)


def markdown(result: dict[str, Any]) -> str:
    args = result["args"]
    machine = result.get("device_machine") or result["machine"]
    lines = [
        f"{args['env']}: both configs trained at once on one {machine['device_name']} for "
        f"{args['train_minutes']} min each (steps set from a measured rate), then evaluated "
        "with CEM "
        f"300 x 30 on {args['pairs']} pairs from their datasets' held-out episodes "
        f"(seed {args['eval_seed']}).",
        "",
        "| config | pixels | frameskip | episodes | train steps | train min | success (95% CI) | "
        "plan p50 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        report = row["report"]
        success, latency = "not evaluated", "-"
        if report is not None:
            low, high = report["ci95"]
            success = (
                f"{report['success_rate']:.0%} ({low:.0%}-{high:.0%}), n={report['num_pairs']}"
            )
            latency = f"{1000 * report['latency_p50_s']:.0f} ms"
        lines.append(
            f"| {row['config']} | {row['image_size']} | {row['action_block']} | "
            f"{row['episodes']:,} | {row['train_steps']:,} | {row['train_minutes']:.1f} | "
            f"{success} | {latency} |"
        )
    if args["smoke"] == "True":
        lines += ["", "Smoke run: tiny sizes, the numbers mean nothing."]
    return "\n".join(lines) + "\n"


def main(args: Args) -> None:
    if args.smoke:
        args = replace(args, **SMOKE)
    device = machine_info(args.device) if torch.cuda.is_available() else None
    measure(args, lambda rows: write_results(args.results, f"paper_gpu_{args.env}", args, rows,
                                             markdown, device_machine=device))  # fmt: skip


if __name__ == "__main__":
    from _cli import parse_args  # beside this script

    main(parse_args(Args, __doc__))
