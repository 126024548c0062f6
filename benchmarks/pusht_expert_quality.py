"""PushT data policies: how goal-directed the goal expert is, and how much the block moves.

Runs each policy on ``episodes`` seeded episodes of ``steps`` steps (``PushTEnv(obs_mode="state")``,
``reset(seed=seed + i)``, policy generator ``np.random.default_rng([seed, i])``) and reports, for
the goal-directed ``PushTGoalExpert`` (default knobs, and noise-free), the targets reached per
episode, the fraction of concluded targets reached (a target concludes when it is reached or
its step limit runs out; the one in progress when the episode ends is not counted) and the
median steps per reached target; and for every policy, including the random-push
``PushTExpert``, the block's displacement and rotation over (t, t + window) windows, the
fraction of windows where the block moves more than ``move_threshold`` px, the fraction of
steps where it moves more than 0.5 px, and the policy's time per ``act``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pusht_expert_quality.py   # ~1 min, 2 cores

Writes ``benchmarks/results/pusht_expert_quality.json``.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lewm_mpc.atomic import write_text_atomic
from lewm_mpc.envs.pusht import PushTEnv
from lewm_mpc.envs.pusht_expert import PushTExpert
from lewm_mpc.envs.pusht_geometry import wrap_angle
from lewm_mpc.envs.pusht_goal_expert import PushTGoalExpert


@dataclass(frozen=True)
class Args:
    out: Path = Path("benchmarks/results")
    episodes: int = 40
    steps: int = 200
    window: int = 25  # steps between the two states of a displacement window
    move_threshold: float = 20.0  # px, a window "moves" the block beyond this
    seed: int = 0


def run_policy(policy: Any, args: Args) -> dict[str, float | None]:
    """Rolls ``policy`` out on the seeded episodes and returns its metrics."""
    env = PushTEnv(obs_mode="state")
    goal_directed = isinstance(policy, PushTGoalExpert)
    reached_steps: list[int] = []
    timed_out = 0
    displacement, rotation, step_moves = [], [], []
    act_seconds = 0.0
    for episode in range(args.episodes):
        _, info = env.reset(seed=args.seed + episode)
        policy.reset(np.random.default_rng([args.seed, episode]))
        states, target_start = [info["state"]], 0
        for step in range(args.steps):
            state = states[-1]
            before = policy.target if goal_directed else None
            was_reached = policy.reached(state) if goal_directed else False
            start = time.perf_counter()
            action = policy.act(state)
            act_seconds += time.perf_counter() - start
            if before is not None and not np.array_equal(before, policy.target):
                if was_reached:  # the policy moved on because the target was reached
                    reached_steps.append(step - target_start)
                else:
                    timed_out += 1
                target_start = step
            _, _, _, _, info = env.step(action)
            states.append(info["state"])
        states = np.stack(states)  # (steps + 1, 10)
        shift = states[args.window :, 2:4] - states[: -args.window, 2:4]  # (W, 2)
        displacement.append(np.linalg.norm(shift, axis=1))
        turn = wrap_angle(states[args.window :, 4] - states[: -args.window, 4])  # (W,)
        rotation.append(np.abs(turn))
        step_moves.append(np.linalg.norm(np.diff(states[:, 2:4], axis=0), axis=1) > 0.5)
    displacement_all, rotation_all = np.concatenate(displacement), np.concatenate(rotation)
    metrics: dict[str, float | None] = {
        "targets_reached_per_episode": None,
        "fraction_targets_reached": None,
        "median_steps_per_reached_target": None,
    }
    if goal_directed:
        concluded = len(reached_steps) + timed_out
        metrics["targets_reached_per_episode"] = len(reached_steps) / args.episodes
        metrics["fraction_targets_reached"] = len(reached_steps) / concluded if concluded else None
        metrics["median_steps_per_reached_target"] = (
            float(np.median(reached_steps)) if reached_steps else None
        )
    metrics.update(
        window_displacement_median_px=float(np.median(displacement_all)),
        window_displacement_mean_px=float(np.mean(displacement_all)),
        window_rotation_median_rad=float(np.median(rotation_all)),
        fraction_windows_moving=float(np.mean(displacement_all > args.move_threshold)),
        fraction_steps_block_moves=float(np.mean(np.concatenate(step_moves))),
        act_ms=1000.0 * act_seconds / (args.episodes * args.steps),
    )
    return metrics


def markdown(results: dict[str, dict[str, float | None]], args: Args) -> str:
    """The results as a markdown table, one row per policy."""

    def cell(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [
        f"| policy | targets reached / episode | targets reached | median steps / target "
        f"| block moved in {args.window} steps, median (mean) px | rotation in {args.window} "
        f"steps, median rad | windows moving > {args.move_threshold:g} px | steps block moves "
        "| act ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in results.items():
        lines.append(
            f"| {name} | {cell(m['targets_reached_per_episode'], 2)} "
            f"| {cell(m['fraction_targets_reached'], 2)} "
            f"| {cell(m['median_steps_per_reached_target'], 0)} "
            f"| {m['window_displacement_median_px']:.0f} ({m['window_displacement_mean_px']:.0f}) "
            f"| {m['window_rotation_median_rad']:.2f} | {m['fraction_windows_moving']:.2f} "
            f"| {m['fraction_steps_block_moves']:.2f} | {m['act_ms']:.2f} |"
        )
    return "\n".join(lines)


def main(args: Args) -> None:
    config = PushTEnv(obs_mode="state").config
    policies = {
        "PushTGoalExpert (defaults)": PushTGoalExpert(config),
        "PushTGoalExpert (noise-free)": PushTGoalExpert(
            config, noise_std=(0.0, 0.0), burst_prob=0.0
        ),
        "PushTExpert (random pushes)": PushTExpert(config),
    }
    start = time.perf_counter()
    results = {name: run_policy(policy, args) for name, policy in policies.items()}
    table = markdown(results, args)
    print(table)
    record = {
        "args": {
            key: str(value) if isinstance(value, Path) else value
            for key, value in asdict(args).items()
        },
        "results": results,
        "table": table,
        "seconds": time.perf_counter() - start,
        "python": platform.python_version(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "pusht_expert_quality.json", json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    from _cli import parse_args  # beside this script

    main(parse_args(Args, __doc__))
