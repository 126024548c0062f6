"""Guardrails: a Two-Room keep-out box across the path, planned with and without it.

A probe reads the agent position from latents; ``KeepOutBox(probe, low, high, margin)`` is a
hard guardrail on the predicted trajectory, so plans whose imagined path enters the box (grown
by a safety margin) are ranked after every feasible one. The margin is calibrated on held-out
episodes: how far the probed prediction can be from the true position. Violations are counted
on the TRUE simulator states: executed steps with the agent inside the box.

The default model is the shipped pretrained:tworoom; it comes without its dataset, so the probe,
the margin and the pairs come from a few seeded Two-Room episodes, regenerated once into a cache
(lewm_mpc.load_run).

python examples/03_guardrails.py                          # the shipped model, 5 pairs
python examples/03_guardrails.py --model runs/demo/model  # yours (finds its dataset)
python examples/03_guardrails.py --planner mppi --pairs 10
python examples/03_guardrails.py --video keepout.mp4      # first pair, without | with guardrail
python examples/03_guardrails.py --smoke                  # tiny data + model: seconds
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

import lewm_mpc as lm
from lewm_mpc.energies import ProbedGoalDistance, calibrate_probe_margin
from lewm_mpc.envs import get_env_spec
from lewm_mpc.envs.two_room_keepout import KeepOutScenario, inside_box
from lewm_mpc.evaluation import EvalConfig, run_pair, sample_pairs
from lewm_mpc.models.pretrained import is_pretrained
from lewm_mpc.recipes import SMOKE_NOTICE, build_from_recipe, smoke_recipe
from lewm_mpc.render import RegionBox, render_episode, tile_videos, view_for_env, write_video

PLANNERS = {"cem": lm.CEM, "mppi": lm.MPPI, "gradient": lm.GradientPlanner}
SMOKE_BUDGETS = {
    "cem": {"num_samples": 16, "iterations": 2, "topk": 4},
    "mppi": {"num_samples": 16, "iterations": 2},
    "gradient": {"restarts": 2, "iterations": 3},
}


@dataclass(frozen=True)
class Args:
    model: str = "pretrained:tworoom"  # Two-Room pixel model (shipped, or made by `make demo`)
    data: str | None = None  # its dataset (default: the one it records, or regenerated)
    planner: str = "cem"  # cem | mppi | gradient
    pairs: int = 5  # held-out same-room pairs with room for a detour
    box_half: float = 0.07  # half side of the keep-out square (arena widths)
    video: str | None = None  # optional .mp4/.gif of the first pair, without | with guardrail
    seed: int = 0
    smoke: bool = False  # tiny data + model in a temp dir, small box, tiny budgets, 2 pairs


def main(args: Args) -> None:
    if args.smoke:
        print(SMOKE_NOTICE)
    with tempfile.TemporaryDirectory() as scratch:
        if args.smoke:  # a throwaway seconds-scale dataset + model
            model_dir, data = build_from_recipe(smoke_recipe("tworoom"), scratch, args.seed)
        else:
            model_dir, data = args.model, args.data
        # The model, its dataset and its own train/val split (for a shipped model: a few
        # regenerated episodes of its data policy, cached after the first run).
        run = lm.load_run(model_dir, data)
        model, dataset, train_ids, val_ids = run.model, run.dataset, run.train_ids, run.val_ids

        # Probe latent -> agent xy (Two-Room's state), and a calibrated safety margin.
        kind = "linear" if args.smoke else "mlp"
        probe = lm.fit_probe_from_dataset(model, dataset, train_ids, kind=kind, max_samples=4000)
        margin = calibrate_probe_margin(model, probe, dataset, val_ids, max_windows=500).margin
        scenario = KeepOutScenario(args.box_half, margin)
        if args.smoke:  # short smoke episodes: a small box between nearby start and goal
            scenario = KeepOutScenario(0.03, 0.01, min_distance=0.1, clearance=0.02)
        print(f"probe R^2 {probe.r2_mean:.3f}, safety margin {scenario.margin:.3f}")

        spec = get_env_spec("tworoom")
        num_pairs, steps = (2, 5) if args.smoke else (args.pairs, 50)
        config = EvalConfig(num_pairs=num_pairs, budget=steps, seed=args.seed)
        pairs, _ = sample_pairs(dataset, val_ids, spec, config, accept=scenario.accepts)
        budget = SMOKE_BUDGETS[args.planner] if args.smoke else {}
        video = args.video or (f"{scratch}/keepout.mp4" if args.smoke else None)
        env = spec.make(obs_mode="pixels")
        videos = []
        for guarded in (False, True):
            successes = entered = violating_steps = 0
            for index, pair in enumerate(pairs):
                low, high = (tuple(c) for c in scenario.box(pair.start_state, pair.goal_state))
                box = lm.KeepOutBox(probe, low, high, scenario.margin, substeps=5)
                guardrails = [lm.Guardrail(box, name="keepout", hard=True)] if guarded else []
                planner = PLANNERS[args.planner](
                    model, seed=args.seed, energy=ProbedGoalDistance(probe),
                    guardrails=guardrails, **budget,
                )  # fmt: skip
                episode = run_pair(env, planner, pair, config)
                inside = inside_box(episode.states, low, high)  # (T + 1,) true agent in box
                successes += episode.succeeded
                entered += bool(inside.any())
                violating_steps += int(inside.sum())
                if index == 0 and video:
                    videos.append(render_episode(
                        episode, probe, view_for_env(env), regions=[RegionBox(low, high)],
                        executed=episode.states, title="keep-out" if guarded else "no guardrail",
                    ))  # fmt: skip
            label = "with keep-out" if guarded else "no guardrail"
            print(
                f"{args.planner} {label:<13}: success {successes}/{len(pairs)}, entered the box in "
                f"{entered}/{len(pairs)} episodes, {violating_steps} violating steps"
            )
        env.close()
        if video:
            write_video(video, tile_videos(videos))
        if args.video:
            print(f"video: {args.video} (first pair: no guardrail | keep-out)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=Args.model)
    parser.add_argument("--data", default=Args.data)
    parser.add_argument("--planner", default=Args.planner, choices=sorted(PLANNERS))
    parser.add_argument("--pairs", type=int, default=Args.pairs)
    parser.add_argument("--box-half", type=float, default=Args.box_half)
    parser.add_argument("--video", default=Args.video)
    parser.add_argument("--seed", type=int, default=Args.seed)
    parser.add_argument("--smoke", action="store_true")
    args = Args(**vars(parser.parse_args()))
    if not args.smoke:  # a missing model or dataset: say which flag to pass
        if not (is_pretrained(args.model) or Path(args.model).is_dir()):
            parser.error(f"no model at {args.model}; pass --model DIR (a checkpoint folder)")
        if args.data is not None and not Path(args.data).is_file():
            parser.error(f"no dataset at {args.data}; pass --data PATH (the model's dataset)")
    main(args)
