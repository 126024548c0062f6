"""Plan in a control loop: load a world model, build a CEM planner, drive the env with an
MPCController toward a goal.

python examples/01_plan_in_a_loop.py                           # the shipped Two-Room model
python examples/01_plan_in_a_loop.py --model runs/demo/model   # yours, e.g. after `make demo`
python examples/01_plan_in_a_loop.py --smoke                   # tiny data + model, seconds
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

import lewm_mpc as lm
from lewm_mpc.envs import get_env_spec
from lewm_mpc.models.pretrained import is_pretrained
from lewm_mpc.recipes import SMOKE_NOTICE, build_from_recipe, smoke_recipe


@dataclass(frozen=True)
class Args:
    model: str = "pretrained:tworoom"  # shipped, or a folder written by `lewm-mpc train`
    episodes: int = 3  # control episodes to run
    budget: int = 50  # env steps per episode
    seed: int = 0
    smoke: bool = False  # train a throwaway tiny model and plan with a tiny budget


def main(args: Args) -> None:
    if args.smoke:
        print(SMOKE_NOTICE)
    with tempfile.TemporaryDirectory() as scratch:
        if args.smoke:  # a throwaway seconds-scale dataset + model
            model_dir, _ = build_from_recipe(smoke_recipe("tworoom"), scratch, args.seed)
        else:
            model_dir = args.model
        world_model = lm.WorldModel.load(model_dir)
        budget = {"num_samples": 16, "iterations": 2, "topk": 4} if args.smoke else {}
        planner = lm.CEM(world_model, seed=args.seed, **budget)

        env = get_env_spec("tworoom").make(obs_mode="pixels")
        episodes, max_steps = (1, 10) if args.smoke else (args.episodes, args.budget)
        # One env action per act(); it replans every block (the planner's receding horizon).
        with lm.MPCController(planner) as controller:
            for episode in range(episodes):
                obs, info = env.reset(seed=args.seed + episode)  # random start and goal
                goal = env.unwrapped.render_state(env.unwrapped.goal_state)  # goal as an image
                controller.reset(goal)  # new episode: empty queue, cold warm start
                steps = 0
                while steps < max_steps and not info["success"]:
                    obs, _, _, _, info = env.step(controller.act(obs))
                    steps += 1
                last = controller.plans[-1].result
                print(
                    f"episode {episode}: success={info['success']} after {steps} steps, final "
                    f"distance {info['distance']:.3f}, {len(controller.plans)} plans, last "
                    f"{1000 * last.solve_s:.0f} ms"
                )
        env.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=Args.model)
    parser.add_argument("--episodes", type=int, default=Args.episodes)
    parser.add_argument("--budget", type=int, default=Args.budget)
    parser.add_argument("--seed", type=int, default=Args.seed)
    parser.add_argument("--smoke", action="store_true")
    args = Args(**vars(parser.parse_args()))
    if not (args.smoke or is_pretrained(args.model) or Path(args.model).is_dir()):
        parser.error(f"no model at {args.model}; pass --model DIR (a checkpoint folder)")
    main(args)
