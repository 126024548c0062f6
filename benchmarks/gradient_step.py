"""One gradient step through a shipped model: the rollout of a batch of plans forward and
backward to the actions, with autograd through the fused rollout against the constant-weight
path the gradient planners take (``lewm_mpc.models.input_gradients_only``: cached weights, a
hand-written backward), timed interleaved in the same process.

    .venv/bin/python benchmarks/gradient_step.py

Writes ``benchmarks/results/gradient_step.{json,md}`` (one torch thread by default; run it on
a quiet machine).
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import lewm_mpc as lm
from lewm_mpc.energies import GoalDistance
from lewm_mpc.models import input_gradients_only

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _results.py beside this file
from _results import write_results

PATHS = ("autograd", "input_gradients_only")


@dataclass(frozen=True)
class Args:
    """Command-line arguments (each field is a ``--flag``)."""

    model: str = "pretrained:tworoom"
    batches: str = "1,4,8,32"  # plans per step (the polish runs 4 descents in one batch)
    horizon: int = 5
    steps: int = 300  # timed steps per path and slot
    slots: int = 5  # rounds of the interleaved comparison
    threads: int = 1
    seed: int = 0
    out: Path = Path("benchmarks/results")


def step_time(model: lm.WorldModel, batch: int, args: Args, fast: bool) -> float:
    """Mean seconds of one forward + backward of ``batch`` plans."""
    generator = torch.Generator().manual_seed(args.seed)
    block = model.action_block * model.action_dim
    z0 = torch.randn(batch, model.latent_dim, generator=generator)
    goal = torch.randn(batch, model.latent_dim, generator=generator)
    actions = torch.rand(batch, args.horizon, block, generator=generator) * 2 - 1
    energy = GoalDistance()

    def step() -> torch.Tensor:
        plans = actions.clone().requires_grad_(True)
        with input_gradients_only() if fast else contextlib.nullcontext():
            latents = model.rollout(z0, plans)
        (grad,) = torch.autograd.grad(energy(latents, plans, goal).sum(), [plans])
        return grad

    step()  # warm-up (the constant path builds its cached weights here)
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    return (time.perf_counter() - start) / args.steps


def main(args: Args) -> dict[str, Any]:
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    model = lm.WorldModel.load(args.model)  # parameters require grad, as a user's model
    rows = []
    for batch in (int(b) for b in args.batches.split(",")):
        times: dict[str, list[float]] = {path: [] for path in PATHS}
        for slot in range(args.slots):
            order = PATHS if slot % 2 == 0 else PATHS[::-1]
            for path in order:
                times[path].append(step_time(model, batch, args, path != "autograd"))
        medians = {path: float(np.median(values)) for path, values in times.items()}
        rows.append({"batch": batch, "ms": {p: 1e3 * m for p, m in medians.items()},
                     "speedup": medians["autograd"] / medians["input_gradients_only"]})  # fmt: skip
        print(f"batch {batch}: " + ", ".join(f"{p} {1e3 * m:.3f} ms" for p, m in medians.items()))
    return write_results(args.out, "gradient_step", args, rows, markdown)


def markdown(result: dict[str, Any]) -> str:
    args, machine = result["args"], result["machine"]
    lines = [
        f"# One gradient step through `{args['model']}`",
        "",
        f"The rollout of a batch of plans (horizon {args['horizon']}) forward and backward to "
        "the actions under `GoalDistance()`: autograd through the fused rollout, against the "
        "path the gradient planners take (`input_gradients_only`: cached contiguous weights, "
        f"a hand-written backward). Median over {args['slots']} interleaved slots of "
        f"{args['steps']} steps each; {args['threads']} torch thread(s) on "
        f"{machine.get('device_name', 'this CPU')}, torch {machine.get('torch', '?')}.",
        "",
        "| plans per step | autograd | input_gradients_only | speed-up |",
        "|---|---|---|---|",
    ]
    for row in result["rows"]:
        ms = row["ms"]
        lines.append(f"| {row['batch']} | {ms['autograd']:.2f} ms | "
                     f"{ms['input_gradients_only']:.2f} ms | {row['speedup']:.2f}x |")  # fmt: skip
    return "\n".join([*lines, ""])


if __name__ == "__main__":
    from _cli import parse_args  # beside this script

    main(parse_args(Args, __doc__))
