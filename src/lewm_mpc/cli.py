"""``lewm-mpc`` command line: collect | train | eval | demo | render | bench.

Errors in what the user asked for print one readable line and exit with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

DEMO_EPISODES = 300


def _add_planner_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("planner (CEM)")
    group.add_argument("--horizon", type=int, default=5, help="planned blocks")
    group.add_argument("--samples", type=int, default=300, help="candidates per iteration")
    group.add_argument("--iterations", type=int, default=30, help="CEM iterations")
    group.add_argument("--topk", type=int, default=30, help="elites")
    group.add_argument("--receding", type=int, default=1, help="blocks executed per plan")
    group.add_argument("--deadline", type=float, default=None, help="per-plan deadline, s")
    group.add_argument(
        "--running-weight",
        type=float,
        default=1.0,
        help="GoalDistance running weight (0 = LeWM terminal cost)",
    )
    group.add_argument("--planner-seed", type=int, default=0)


def _add_eval_args(parser: argparse.ArgumentParser, pairs: int) -> None:
    group = parser.add_argument_group("evaluation protocol")
    group.add_argument("--pairs", type=int, default=pairs, help="held-out start/goal pairs")
    group.add_argument("--goal-offset", type=int, default=25, help="env steps start -> goal")
    group.add_argument("--budget", type=int, default=50, help="env steps per pair")
    group.add_argument("--eval-seed", type=int, default=0, help="pair sampling seed")


def _add_train_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    group.add_argument("--config", default="cpu", help="model preset: cpu | paper")
    group.add_argument("--steps", type=int, default=None, help="optimizer steps (default 3000)")
    group.add_argument("--batch-size", type=int, default=None)
    group.add_argument("--lr", type=float, default=None)
    group.add_argument("--seed", type=int, default=0, help="training seed")
    group.add_argument("--device", default="auto", help="auto | cpu | cuda")
    group.add_argument("--obs", default="pixels", choices=("pixels", "state"))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for docs and tests)."""
    parser = argparse.ArgumentParser(
        prog="lewm-mpc", description="MPC with learned latent world models"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("collect", help="collect a dataset of rollouts to HDF5")
    p.add_argument("env", help="environment name, e.g. tworoom")
    p.add_argument("--out", type=Path, required=True, help="output .h5 file")
    p.add_argument("--episodes", type=int, default=None, help="default: the env's recipe")
    p.add_argument("--steps", type=int, default=None, help="actions per episode (recipe's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="processes (recipe's)")
    p.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="pixel observation size (default: the env's, 64; 224 for --config paper)",
    )

    p = sub.add_parser("train", help="train (or resume) a world model")
    p.add_argument("--data", type=Path, required=True, help="dataset .h5")
    p.add_argument("--out", type=Path, required=True, help="run directory")
    _add_train_args(p)

    p = sub.add_parser("eval", help="evaluate planning on held-out start/goal pairs")
    p.add_argument("--model", type=Path, required=True, help="run/checkpoint directory")
    p.add_argument("--data", type=Path, required=True, help="dataset .h5 (validation split)")
    p.add_argument("--out", type=Path, default=None, help="JSON report path")
    p.add_argument("--video", type=Path, default=None, help="mp4/gif of the first pair")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    _add_eval_args(p, pairs=50)
    _add_planner_args(p)

    p = sub.add_parser("demo", help="collect -> train -> plan -> video on Two-Room")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder")
    p.add_argument("--episodes", type=int, default=DEMO_EPISODES)
    _add_train_args(p)
    _add_eval_args(p, pairs=20)
    _add_planner_args(p)

    from lewm_mpc.render.command import add_arguments as add_render_arguments

    p = sub.add_parser("render", help="render one MPC episode with the imagined plan (mp4/gif)")
    add_render_arguments(p)

    from lewm_mpc.bench.command import add_arguments as add_bench_arguments

    p = sub.add_parser(
        "bench", help="compare planners x environments (resumable; local processes or Ray)"
    )
    add_bench_arguments(p)
    return parser


# ----------------------------------------------------------------------------- commands
def cmd_collect(args: argparse.Namespace) -> None:
    from lewm_mpc.collection import collect_dataset
    from lewm_mpc.recipes import get_recipe

    recipe = get_recipe(args.env)
    env_config = None if args.image_size is None else {"image_size": args.image_size}
    path = collect_dataset(
        args.env,
        args.out,
        recipe.episodes if args.episodes is None else args.episodes,
        recipe.episode_steps if args.steps is None else args.steps,
        args.seed,
        recipe.workers if args.workers is None else args.workers,
        env_config=env_config,
    )
    print(f"dataset: {path}")


def _train(args: argparse.Namespace, data: Path, out: Path) -> None:
    from lewm_mpc.models import named_config
    from lewm_mpc.training import TrainConfig, train

    overrides = {
        name: value
        for name, value in (("steps", args.steps), ("batch_size", args.batch_size),
                            ("lr", args.lr))
        if value is not None
    }  # fmt: skip
    config = TrainConfig(seed=args.seed, device=args.device, **overrides)
    summary = train(data, out, named_config(args.config), config, obs_key=args.obs)
    print(
        f"model: {summary.run_dir} ({summary.num_parameters / 1e6:.2f}M params, "
        f"{summary.steps} steps, val prediction loss {summary.val_prediction:.4f}, "
        f"{summary.seconds / 60:.1f} min of training)"
    )


def cmd_train(args: argparse.Namespace) -> None:
    _train(args, args.data, args.out)


def _evaluate(
    args: argparse.Namespace, model_dir: Path, data: Path, out: Path | None, video: Path | None
) -> float:
    import torch

    from lewm_mpc.data import EpisodeDataset
    from lewm_mpc.energies import GoalDistance
    from lewm_mpc.envs import get_env_spec
    from lewm_mpc.evaluation import EvalConfig, evaluate
    from lewm_mpc.models import WorldModel
    from lewm_mpc.planners import CEM
    from lewm_mpc.render import write_episode_video
    from lewm_mpc.training import resolve_device

    model = WorldModel.load(model_dir, resolve_device(args.device))
    dataset = EpisodeDataset.load(data)
    trained_on = model.metadata.get("env_id", dataset.meta.env_id)
    if trained_on != dataset.meta.env_id:
        raise ValueError(
            f"model was trained on {trained_on} but {data} holds {dataset.meta.env_id}"
        )
    if video is not None and model.config.obs_kind != "pixels":
        raise ValueError("--video needs a pixel model")
    train_meta = model.metadata.get("train_config", {})
    planner = CEM(
        model, horizon=args.horizon, num_samples=args.samples, iterations=args.iterations,
        topk=args.topk, receding_horizon=args.receding, seed=args.planner_seed,
        energy=GoalDistance(args.running_weight),
    )  # fmt: skip
    config = EvalConfig(
        num_pairs=args.pairs, goal_offset=args.goal_offset, budget=args.budget,
        seed=args.eval_seed, val_fraction=train_meta.get("val_fraction", 0.1),
        split_seed=train_meta.get("seed", 0), deadline_s=args.deadline,
    )  # fmt: skip

    def save_first_video(index, pair, episode) -> None:
        if index == 0 and video is not None:
            write_episode_video(video, episode.observations, episode.goal, episode.success)

    with torch.inference_mode():
        report = evaluate(
            planner,
            dataset,
            get_env_spec(dataset.meta.env_id),
            config,
            obs_mode=model.config.obs_kind,
            on_episode=save_first_video,
        )
    print(report.summary())
    if out is not None:
        print(f"report: {report.save(out)}")
    if video is not None:
        outcome = "success" if report.pairs[0].success else "failure"
        print(f"video: {video} (first pair: {outcome})")
    return report.success_rate


def cmd_eval(args: argparse.Namespace) -> None:
    _evaluate(args, args.model, args.data, args.out, args.video)


def cmd_demo(args: argparse.Namespace) -> None:
    from lewm_mpc.collection import collect_dataset

    started = time.perf_counter()
    out: Path = args.out
    data = collect_dataset("tworoom", out / "tworoom.h5", args.episodes, None, args.seed, 1)
    print(f"[1/3] dataset: {data}")
    _train(args, data, out / "model")
    print("[2/3] trained")
    rate = _evaluate(args, out / "model", data, out / "eval.json", out / "episode.mp4")
    print(
        f"[3/3] Two-Room success rate {100 * rate:.1f}% "
        f"(demo took {(time.perf_counter() - started) / 60:.1f} min; outputs in {out})"
    )


def cmd_render(args: argparse.Namespace) -> None:
    from lewm_mpc.render.command import run_from_args

    run_from_args(args)


def cmd_bench(args: argparse.Namespace) -> None:
    from lewm_mpc.bench.command import run_from_args

    run_from_args(args)


COMMANDS = {
    "collect": cmd_collect,
    "train": cmd_train,
    "eval": cmd_eval,
    "demo": cmd_demo,
    "render": cmd_render,
    "bench": cmd_bench,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lewm-mpc`` console script."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(
            "lewm-mpc: interrupted; completed work is saved, rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    except (ValueError, FileNotFoundError, ImportError, OSError) as error:
        print(f"lewm-mpc {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
