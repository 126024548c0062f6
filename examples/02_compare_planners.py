"""Compare planners: one start/goal pair solved by CEM, MPPI and gradient shooting, one video.

Each planner runs MPC with its default budget from the same held-out start toward the same goal.
The video shows the three episodes side by side: the executed frames beside the goal, the plan in
force drawn on the frame (its predicted latents read by a probe fitted on the training split and
projected to pixels), the true executed path, and each plan's energy terms over time.

The default model is the env's shipped one (pretrained:ENV); it comes without its dataset, so the
probe and the pair come from a few seeded episodes of its data policy, regenerated once into a
cache (lewm_mpc.load_run).

python examples/02_compare_planners.py                 # the shipped Two-Room model
python examples/02_compare_planners.py --env reacher   # the shipped Reacher model
python examples/02_compare_planners.py --model runs/demo/model   # yours (finds its dataset)
python examples/02_compare_planners.py --out cmp.gif   # .mp4 or .gif
python examples/02_compare_planners.py --smoke         # tiny data + model, tiny budgets: seconds
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

import lewm_mpc as lm
from lewm_mpc.envs import get_env_spec
from lewm_mpc.evaluation import EvalConfig, run_pair, sample_pairs
from lewm_mpc.models.pretrained import is_pretrained, pretrained_names
from lewm_mpc.recipes import SMOKE_NOTICE, build_from_recipe, get_recipe, smoke_recipe
from lewm_mpc.render import render_episode, tile_videos, view_for_env, write_video

PLANNERS = {"CEM": lm.CEM, "MPPI": lm.MPPI, "Gradient": lm.GradientPlanner}
SMOKE_BUDGETS = {
    "CEM": {"num_samples": 16, "iterations": 2, "topk": 4},
    "MPPI": {"num_samples": 16, "iterations": 2},
    "Gradient": {"restarts": 2, "iterations": 3},
}


@dataclass(frozen=True)
class Args:
    env: str = "tworoom"  # tworoom | reacher | pointmass | pusht | cube
    model: str | None = None  # checkpoint folder (default: the env's shipped pretrained:ENV)
    data: str | None = None  # the model's dataset (default: the one it records, or regenerated)
    out: str | None = None  # video (.mp4/.gif); default runs/examples/02_compare_planners.mp4
    pair: int = 0  # which held-out pair
    steps: int = 50  # env-step budget per episode
    seed: int = 0
    smoke: bool = False  # tiny data + model in a temp dir, tiny budgets, 5 steps


def main(args: Args) -> None:
    if args.smoke:
        print(SMOKE_NOTICE)
    with tempfile.TemporaryDirectory() as scratch:
        spec, recipe = get_env_spec(args.env), get_recipe(args.env)
        if args.smoke:  # a throwaway seconds-scale dataset + model
            model_dir, data = build_from_recipe(smoke_recipe(spec.name), scratch, args.seed)
        else:
            model_dir, data = args.model or f"pretrained:{spec.name}", args.data
        out = Path(args.out or (f"{scratch}/compare.mp4" if args.smoke else
                                "runs/examples/02_compare_planners.mp4"))  # fmt: skip
        # The model, its dataset and its own train/val split (for a shipped model: a few
        # regenerated episodes of its data policy, cached after the first run).
        run = lm.load_run(model_dir, data)
        model, dataset, train_ids, val_ids = run.model, run.dataset, run.train_ids, run.val_ids

        # A probe reads the physical quantity (e.g. the agent position) from latents.
        probe = lm.fit_probe_from_dataset(
            model, dataset, train_ids, recipe.probe_target,
            kind="linear" if args.smoke else "mlp", max_samples=4000,
        )  # fmt: skip
        steps = 5 if args.smoke else args.steps
        config = EvalConfig(num_pairs=args.pair + 1, budget=steps, seed=args.seed)
        pair = sample_pairs(dataset, val_ids, spec, config)[0][args.pair]

        env = spec.make(obs_mode="pixels", env_config=dataset.meta.env_config)
        view = view_for_env(env)  # probed quantity -> pixels of the observation
        videos = []
        for name, planner_class in PLANNERS.items():
            budget = SMOKE_BUDGETS[name] if args.smoke else {}
            planner = planner_class(model, seed=args.seed, **budget)
            episode = run_pair(env, planner, pair, config)
            last = episode.plans[-1]
            terms = ", ".join(f"{key} {float(value):.3g}" for key, value in last.terms.items())
            print(
                f"{name}: success={episode.succeeded} after {len(episode.actions)} steps, "
                f"{len(episode.plans)} plans of {1000 * episode.plan_seconds.mean():.0f} ms on "
                f"average, last plan's energy: {terms}"
            )
            outcome = "success" if episode.succeeded else "no success"
            videos.append(render_episode(
                episode, probe, view, executed=recipe.probe_target(episode.states),
                title=f"{name}: {outcome}",
            ))  # fmt: skip
        env.close()
        out.parent.mkdir(parents=True, exist_ok=True)
        write_video(out, tile_videos(videos))
        if not args.smoke or args.out:  # a smoke run's default video goes with its temp dir
            print(f"video: {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default=Args.env)
    parser.add_argument("--model", default=Args.model)
    parser.add_argument("--data", default=Args.data)
    parser.add_argument("--out", default=Args.out)
    parser.add_argument("--pair", type=int, default=Args.pair)
    parser.add_argument("--steps", type=int, default=Args.steps)
    parser.add_argument("--seed", type=int, default=Args.seed)
    parser.add_argument("--smoke", action="store_true")
    args = Args(**vars(parser.parse_args()))
    if not args.smoke:  # a missing model or dataset: say which flag to pass
        env = get_env_spec(args.env).name
        if args.model is None and env not in pretrained_names():
            parser.error(f"no model is shipped for {env}; pass --model DIR (a checkpoint folder)")
        if args.model and not (is_pretrained(args.model) or Path(args.model).is_dir()):
            parser.error(f"no model at {args.model}; pass --model DIR (a checkpoint folder)")
        if args.data is not None and not Path(args.data).is_file():
            parser.error(f"no dataset at {args.data}; pass --data PATH (the model's dataset)")
    main(args)
