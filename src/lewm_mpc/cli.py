"""``lewm-mpc`` command line: collect | train | eval | demo | render | bench.

Errors in what the user asked for print one readable line and exit with status 2; a bad flag
(a count of 0 or less, a malformed number) adds a second line pointing to ``--help``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from lewm_mpc.argtypes import (
    config_field,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)

# The argument groups ``train`` and ``demo`` share with ``eval``; ``_planner`` is re-exported
# (tests import it from here).
from lewm_mpc.eval_command import _add_eval_args, _add_planner_args, _add_tensorboard_arg
from lewm_mpc.eval_command import _planner as _planner

DEMO_EPISODES = 300


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are two lines (the error and where help is), not
    the whole usage block; subcommand parsers inherit it."""

    def error(self, message: str) -> NoReturn:
        """Print the error and a pointer to ``--help``; exit with status 2."""
        self.exit(2, f"{self.prog}: error: {message}\n(see {self.prog} --help)\n")


def _add_train_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    group.add_argument("--config", default="cpu", help="model preset: cpu | paper")
    group.add_argument(
        "--history", type=positive_int, default=None, metavar="H",
        help="frames the predictor conditions on (default: the preset's, 1 for cpu, 3 for "
        "paper); a model with H > 1 plans from the last H observations, which lets it infer "
        "velocities a single frame does not show",
    )  # fmt: skip
    group.add_argument(
        "--steps", type=positive_int, default=None, help="optimizer steps (default 3000)"
    )
    group.add_argument("--batch-size", type=positive_int, default=None)
    group.add_argument("--lr", type=positive_float, default=None)
    group.add_argument(
        "--state-loss-weight", type=non_negative_float, default=None, metavar="W",
        help="auxiliary loss: a linear head regresses each frame's task features from its "
        "embedding (0: LeWorldModel's objective, the default)",
    )  # fmt: skip
    group.add_argument(
        "--rollout-weight", type=non_negative_float, default=None, metavar="W",
        help="open-loop multi-step prediction term over each training window (0: LeWorldModel's "
        "objective, the default)",
    )  # fmt: skip
    group.add_argument(
        "--augment", action="store_true",
        help="train on windows turned and mirrored by the env's scene symmetries (PushT: the "
        "eight of its square arena), frames and actions alike",
    )  # fmt: skip
    group.add_argument("--seed", type=non_negative_int, default=0, help="training seed")
    group.add_argument("--device", default="auto", help="auto | cpu | cuda")
    group.add_argument(
        "--precision", default="float32", choices=("float32", "bfloat16"),
        help="bfloat16: mixed precision (autocast) for the networks, fast on a GPU (float32)",
    )  # fmt: skip
    group.add_argument(
        "--compile", action="store_true",
        help="compile the training step with torch.compile (a GPU; on a CPU it needs a C++ "
        "compiler); a run resumes with or without it",
    )  # fmt: skip
    group.add_argument("--obs", default="pixels", choices=("pixels", "state"))


def package_version() -> str:
    """The installed distribution's version (``lewm_mpc.__version__`` when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lewm-mpc")
    except PackageNotFoundError:  # run from a source tree that was never installed
        import lewm_mpc

        return getattr(lewm_mpc, "__version__", "unknown")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for docs and tests)."""
    parser = _Parser(prog="lewm-mpc", description="MPC with learned latent world models")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("collect", help="collect a dataset of rollouts to HDF5")
    p.add_argument("env", help="environment name, e.g. tworoom")
    p.add_argument("--out", type=Path, required=True, help="output .h5 file")
    p.add_argument("--episodes", type=positive_int, default=None, help="default: env's recipe")
    p.add_argument("--steps", type=positive_int, default=None, help="actions/episode (recipe's)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--workers", type=positive_int, default=None, help="processes (recipe's)")
    p.add_argument("--policy", default=None, help="data policy (default: the env's first)")
    p.add_argument(
        "--action-block",
        type=positive_int,
        default=1,
        metavar="K",
        help="env actions per stored frame (default 1); frames in between are not rendered; "
        "--steps must be a multiple of K and the model's action block a multiple of K",
    )
    p.add_argument(
        "--image-size",
        type=positive_int,
        default=None,
        help="pixel observation size (default: the env's, 64; 224 for --config paper)",
    )
    p.add_argument(
        "--env-option", type=config_field, action="append", default=[], metavar="KEY=VALUE",
        help="an env config field, recorded in the dataset (repeatable; e.g. Cube's "
        "mesh_cell=0.005: frames 5x cheaper to render, see envs/cube.md)",
    )  # fmt: skip
    p.add_argument(
        "--executor", choices=("local", "ray"), default="local",
        help="local processes (--workers) or Ray tasks (extra ray; the same dataset)",
    )  # fmt: skip
    p.add_argument(
        "--ray-address", default=None,
        help="Ray cluster address (default: RAY_ADDRESS, else a local cluster of --workers CPUs)",
    )  # fmt: skip

    p = sub.add_parser("train", help="train (or resume) a world model")
    p.add_argument("--data", type=Path, required=True, help="dataset .h5")
    p.add_argument("--out", type=Path, required=True, help="run directory")
    _add_train_args(p)
    _add_tensorboard_arg(p, "the training curves")
    p.add_argument(
        "--nproc", type=positive_int, default=1, metavar="N",
        help="data-parallel processes on this machine (launches torchrun; --batch-size is the "
        "global batch, a multiple of N); for several machines run torchrun yourself",
    )  # fmt: skip

    from lewm_mpc.eval_command import add_arguments as add_eval_arguments

    p = sub.add_parser(
        "eval",
        help="evaluate planning on held-out start/goal pairs (or, with --offline, prediction "
        "error and probe R² on held-out episodes, no simulator)",
    )
    add_eval_arguments(p)

    p = sub.add_parser("demo", help="collect -> train -> plan -> video on Two-Room")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder")
    p.add_argument("--episodes", type=positive_int, default=DEMO_EPISODES)
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

    from lewm_mpc.data.interop.command import add_export_arguments, add_import_arguments

    add_import_arguments(
        sub.add_parser("import", help="import a dataset (swm HDF5, npz, LeRobot folder)")
    )
    add_export_arguments(sub.add_parser("export", help="export a dataset (swm HDF5)"))

    from lewm_mpc.models.lewm_command import add_arguments as add_convert_arguments

    add_convert_arguments(sub.add_parser(
        "convert-lewm", help="a LeWorldModel checkpoint (weights.pt + config.json) as ours"
    ))  # fmt: skip
    return parser


# ----------------------------------------------------------------------------- commands
def cmd_collect(args: argparse.Namespace) -> None:
    from lewm_mpc.data.collection import collect_dataset
    from lewm_mpc.recipes import get_recipe

    recipe = get_recipe(args.env)
    env_config = dict(args.env_option)
    if args.image_size is not None:
        env_config["image_size"] = args.image_size
    path = collect_dataset(
        args.env,
        args.out,
        recipe.episodes if args.episodes is None else args.episodes,
        recipe.episode_steps if args.steps is None else args.steps,
        args.seed,
        recipe.workers if args.workers is None else args.workers,
        env_config=env_config,
        policy=args.policy,
        action_block=args.action_block,
        executor=args.executor,
        ray_address=args.ray_address,
    )
    print(f"dataset: {path}")


def _train(args: argparse.Namespace, data: Path, out: Path) -> None:
    from lewm_mpc.models import named_config
    from lewm_mpc.training import TrainConfig, train

    overrides = {
        name: value
        for name, value in (("steps", args.steps), ("batch_size", args.batch_size),
                            ("lr", args.lr), ("state_loss_weight", args.state_loss_weight),
                            ("rollout_weight", args.rollout_weight))
        if value is not None
    }  # fmt: skip
    config = TrainConfig(seed=args.seed, device=args.device, precision=args.precision,
                         compile=args.compile, augment=args.augment, **overrides)  # fmt: skip
    summary = train(
        data, out,
        named_config(args.config, **({} if args.history is None else {"history": args.history})),
        config, obs_mode=args.obs,
        tensorboard=getattr(args, "tensorboard", None),
    )  # fmt: skip
    if os.environ.get("RANK", "0") != "0":  # one line per run, not per torchrun process
        return
    print(
        f"model: {summary.run_dir} ({summary.num_parameters / 1e6:.2f}M params, "
        f"{summary.steps} steps, val prediction loss {summary.val_prediction:.4f}, "
        f"{summary.seconds / 60:.1f} min of training)"
    )


def _without_nproc(argv: Sequence[str]) -> list[str]:
    """``argv`` without its ``--nproc N`` / ``--nproc=N``."""
    kept: list[str] = []
    skip = False
    for item in argv:
        if skip:
            skip = False
        elif item == "--nproc":
            skip = True
        elif not item.startswith("--nproc="):
            kept.append(item)
    return kept


def cmd_train(args: argparse.Namespace) -> int:
    from lewm_mpc import distributed

    if args.nproc > 1:
        if distributed.requested_world_size() > 1:
            raise ValueError(
                "--nproc launches torchrun itself; under torchrun leave it out and set "
                "--nproc_per_node there"
            )
        return distributed.launch(args.nproc, _without_nproc(args.argv))
    _train(args, args.data, args.out)
    return 0


def cmd_eval(args: argparse.Namespace) -> None:
    from lewm_mpc.eval_command import run

    run(args)


def cmd_demo(args: argparse.Namespace) -> None:
    from lewm_mpc.data.collection import collect_dataset
    from lewm_mpc.eval_command import _evaluate, _load_planners

    _load_planners(args)
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


def cmd_import(args: argparse.Namespace) -> None:
    from lewm_mpc.data.interop.command import run_import

    run_import(args)


def cmd_export(args: argparse.Namespace) -> None:
    from lewm_mpc.data.interop.command import run_export

    run_export(args)


def cmd_convert_lewm(args: argparse.Namespace) -> None:
    from lewm_mpc.models.lewm_command import run

    run(args)


COMMANDS = {
    "collect": cmd_collect,
    "train": cmd_train,
    "eval": cmd_eval,
    "demo": cmd_demo,
    "render": cmd_render,
    "bench": cmd_bench,
    "import": cmd_import,
    "export": cmd_export,
    "convert-lewm": cmd_convert_lewm,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lewm-mpc`` console script."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        code = COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(
            "lewm-mpc: interrupted; completed work is saved, rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    except (ValueError, FileNotFoundError, ImportError, OSError) as error:
        print(f"lewm-mpc {args.command}: error: {error}", file=sys.stderr)
        return 2
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
