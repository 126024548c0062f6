"""Train your own: collect a dataset, train a world model on it, evaluate CEM planning with it.

Each environment has a recipe (``lewm_mpc.recipes``): how many episodes to collect and how long
to train a CPU-sized model; ``build_from_recipe`` does steps 1 and 2 in one call. Steps resume:
rerun the same command after an interruption. Evaluation follows the project's protocol
(``lewm_mpc.evaluation``): held-out start/goal pairs, success rate with a 95% Wilson interval.

python examples/05_train_your_own.py                  # Two-Room recipe: ~6 min training on 2 cores
python examples/05_train_your_own.py --env reacher    # outputs in runs/examples/reacher
python examples/05_train_your_own.py --smoke          # tiny data, model and eval: seconds
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import lewm_mpc as lm
from lewm_mpc.data import EpisodeDataset
from lewm_mpc.data.collection import collect_dataset
from lewm_mpc.envs import get_env_spec
from lewm_mpc.evaluation import EvalConfig, evaluate
from lewm_mpc.models.device import resolve_device
from lewm_mpc.recipes import SMOKE_NOTICE, get_recipe, smoke_recipe
from lewm_mpc.training import train


@dataclass(frozen=True)
class Args:
    env: str = "tworoom"  # tworoom | reacher | pusht | cube
    out: str | None = None  # dataset + model folder (default runs/examples/<env>; --smoke: temp)
    pairs: int = 50  # held-out start/goal pairs to evaluate
    seed: int = 0  # seeds collection, training and the planner
    smoke: bool = False  # seconds-scale recipe, 3 pairs, tiny CEM budget


def main(args: Args) -> None:
    if args.smoke:
        print(SMOKE_NOTICE)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.out or (scratch if args.smoke else f"runs/examples/{args.env}"))
        recipe = smoke_recipe(args.env) if args.smoke else get_recipe(args.env)
        print(
            f"{recipe.env}: {recipe.episodes} episodes x {recipe.episode_steps} steps, "
            f"{recipe.train.steps} training steps, outputs in {folder}"
        )

        # 1. Collect: the env's scripted data policy, pixels and states into one HDF5 file.
        data = collect_dataset(recipe.env, folder / "data.h5", recipe.episodes,
                               recipe.episode_steps, args.seed, recipe.workers)  # fmt: skip

        # 2. Train: next-embedding prediction + SIGReg; a checkpoint folder (safetensors).
        train_config = replace(recipe.train, seed=args.seed)
        summary = train(data, folder / "model", recipe.model, train_config)
        print(
            f"trained {summary.num_parameters:,} parameters for {summary.steps} steps in "
            f"{summary.seconds / 60:.1f} min, validation loss {summary.val_loss:.4f}"
        )

        # 3. Evaluate: MPC with CEM on pairs from the validation episodes training never saw.
        model = lm.WorldModel.load(folder / "model", resolve_device(train_config.device))
        budget = {"num_samples": 16, "iterations": 2, "topk": 4} if args.smoke else {}
        planner = lm.CEM(model, seed=args.seed, **budget)  # default: 300 x 2 rounds + L-BFGS polish
        config = EvalConfig(
            num_pairs=3 if args.smoke else args.pairs,
            goal_offset=10 if args.smoke else 25,  # env steps from start to goal
            budget=10 if args.smoke else 50,  # env steps of MPC per pair
            seed=args.seed,
            val_fraction=train_config.val_fraction,  # the split training used
            split_seed=train_config.seed,
        )
        dataset = EpisodeDataset.load(data)
        spec = get_env_spec(recipe.env)
        report = evaluate(planner, dataset, spec, config, obs_mode=model.config.obs_mode)
        print(report.summary())  # success k/n = rate (95% CI low-high), latency, ...


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default=Args.env)
    parser.add_argument("--out", default=Args.out)
    parser.add_argument("--pairs", type=int, default=Args.pairs)
    parser.add_argument("--seed", type=int, default=Args.seed)
    parser.add_argument("--smoke", action="store_true")
    main(Args(**vars(parser.parse_args())))
