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
from typing import TYPE_CHECKING, Any, NoReturn

from lewm_mpc.argtypes import non_negative_float, non_negative_int, positive_float, positive_int

if TYPE_CHECKING:
    from lewm_mpc.envs import EnvSpec
    from lewm_mpc.planners.base import Planner
    from lewm_mpc.runs import Run

DEMO_EPISODES = 300


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are two lines (the error and where help is), not
    the whole usage block; subcommand parsers inherit it."""

    def error(self, message: str) -> NoReturn:
        """Print the error and a pointer to ``--help``; exit with status 2."""
        self.exit(2, f"{self.prog}: error: {message}\n(see {self.prog} --help)\n")


def _add_planner_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "planner", "budget flags left out keep the planner's (or the preset's) own values"
    )
    group.add_argument(
        "--planner",
        default="cem",
        help="registry name: cem (default) | mppi | gradient | hybrid | one a --plugin registers",
    )
    group.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="module path or .py file that registers user planners (repeatable)",
    )
    group.add_argument("--preset", default=None, help="planner preset: shipped name or .toml path")
    count = positive_int
    group.add_argument("--horizon", type=count, default=None, help="planned blocks (5)")
    group.add_argument("--samples", type=count, default=None, help="candidates per iteration (300)")
    group.add_argument("--iterations", type=count, default=None, help="iterations (30)")
    group.add_argument("--topk", type=count, default=None, help="CEM elites (30)")
    group.add_argument("--receding", type=count, default=None, help="blocks executed per plan (1)")
    group.add_argument("--deadline", type=positive_float, default=None, help="per-plan deadline, s")
    group.add_argument(
        "--running-weight",
        type=float,
        default=None,
        help="GoalDistance running weight (1.0; 0 = LeWM terminal cost)",
    )
    group.add_argument("--planner-seed", type=non_negative_int, default=0)


def _add_eval_args(parser: argparse.ArgumentParser, pairs: int) -> None:
    group = parser.add_argument_group("evaluation protocol")
    count = positive_int
    group.add_argument("--pairs", type=count, default=pairs, help="held-out start/goal pairs")
    group.add_argument("--goal-offset", type=count, default=25, help="env steps start -> goal")
    group.add_argument(
        "--goals", choices=("offset", "random"), default="offset",
        help="offset: the state --goal-offset steps on in an episode; random: anywhere the env "
        "draws a goal (regenerated resets, no dataset needed)",
    )  # fmt: skip
    group.add_argument(
        "--hierarchical", action="store_true",
        help="reach subgoals from a latent graph of the model's training episodes",
    )  # fmt: skip
    group.add_argument("--budget", type=count, default=50, help="env steps per pair")
    group.add_argument("--eval-seed", type=non_negative_int, default=0, help="pair sampling seed")


def _add_tensorboard_arg(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--tensorboard",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"also log {what} as TensorBoard events in DIR (needs the tb extra)",
    )


def _add_train_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    group.add_argument("--config", default="cpu", help="model preset: cpu | paper")
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
    group.add_argument("--seed", type=non_negative_int, default=0, help="training seed")
    group.add_argument("--device", default="auto", help="auto | cpu | cuda")
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

    p = sub.add_parser(
        "eval",
        help="evaluate planning on held-out start/goal pairs (or, with --offline, prediction "
        "error and probe R² on held-out episodes, no simulator)",
    )
    p.add_argument(
        "--model", type=Path, required=True,
        help="run/checkpoint directory, or a shipped model: pretrained:ENV",
    )  # fmt: skip
    p.add_argument(
        "--data", type=Path, default=None,
        help="dataset .h5 (default: the one the model was trained on, if unchanged; for a "
        "shipped model or one that records none, pairs come from regenerated held-out episodes)",
    )  # fmt: skip
    p.add_argument(
        "--offline", action="store_true",
        help="no simulator: open-loop k-step prediction error and linear-probe R² on the "
        "model's held-out episodes",
    )  # fmt: skip
    p.add_argument(
        "--offline-horizon", type=positive_int, default=5, help="--offline: model steps K (5)"
    )
    p.add_argument("--out", type=Path, default=None, help="JSON report path")
    p.add_argument("--video", type=Path, default=None, help="mp4/gif of the first pair")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    _add_eval_args(p, pairs=50)
    _add_tensorboard_arg(p, "the results (at the model's training step)")
    p.add_argument(
        "--pairs-from",
        choices=("val", "train"),
        default="val",
        help="episodes the start/goal pairs come from: val = held out (default), train = the "
        "training episodes, as LeWorldModel evaluates (report it apart)",
    )
    _add_planner_args(p)

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

    add_import_arguments(sub.add_parser("import", help="import a dataset (swm HDF5, npz)"))
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
    env_config = None if args.image_size is None else {"image_size": args.image_size}
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
    config = TrainConfig(seed=args.seed, device=args.device, **overrides)
    summary = train(
        data, out, named_config(args.config), config, obs_mode=args.obs,
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


def _load_planners(args: argparse.Namespace) -> None:
    """Import the ``--plugin`` modules, then check ``--planner``: a plugin may register it."""
    from lewm_mpc.planners.plugins import load_plugins
    from lewm_mpc.planners.registry import get_planner_entry

    load_plugins(args.plugin)
    if args.preset is None and not getattr(args, "offline", False):
        get_planner_entry(args.planner)  # an unknown name: the message lists the known ones


def _planner(args: argparse.Namespace, model: object, spec: EnvSpec | None = None) -> Planner:
    """The planner the flags ask for: ``--preset``, else ``--planner`` at the env's reference
    budget (``spec.budget``, for the fields the planner has) or its own defaults; budget flags
    given on the command line override either."""
    import dataclasses

    from lewm_mpc.energies import GoalDistance
    from lewm_mpc.planners.presets import build_planner
    from lewm_mpc.planners.registry import get_planner_entry, make_planner

    fields = {
        "horizon": args.horizon, "num_samples": args.samples, "iterations": args.iterations,
        "topk": args.topk, "receding_horizon": args.receding,
    }  # fmt: skip
    overrides = {name: value for name, value in fields.items() if value is not None}
    overrides["seed"] = args.planner_seed
    if args.running_weight is not None:
        overrides["energy"] = GoalDistance(args.running_weight)
    if args.preset is not None:
        return build_planner(model, args.preset, **overrides)
    overrides.setdefault("energy", GoalDistance())
    if spec is not None:
        known = {
            field.name for field in dataclasses.fields(get_planner_entry(args.planner).config_class)
        }
        budget = dataclasses.asdict(spec.budget)
        overrides = {**{k: v for k, v in budget.items() if k in known}, **overrides}
    return make_planner(args.planner, model, **overrides)


def _evaluate_offline(args: argparse.Namespace, run: Run, out: Path | None) -> None:
    from lewm_mpc.offline_eval import OfflineConfig, evaluate_offline

    report = evaluate_offline(run, OfflineConfig(horizon=args.offline_horizon))
    print(report.table())
    if out is not None:
        print(f"report: {report.save(out)}")


def _without_dataset(model_dir: Path) -> bool:
    """A shipped model, or one that records no dataset: ``eval`` regenerates held-out episodes."""
    from lewm_mpc.models.checkpoint import read_checkpoint_config
    from lewm_mpc.models.pretrained import is_pretrained, resolve_model_path

    if is_pretrained(model_dir):
        return True
    _, meta, _ = read_checkpoint_config(resolve_model_path(model_dir))
    return meta.dataset is None


def _first_video_saver(video: Path | None) -> Any:
    """An ``on_episode`` callback that writes the first pair's episode to ``video``."""

    def save(index: int, pair: Any, episode: Any) -> None:
        if index == 0 and video is not None:
            from lewm_mpc.render import write_episode_video

            write_episode_video(video, episode.observations, episode.goal, episode.success)

    return save


def _print_report(
    report: Any, out: Path | None, video: Path | None, args: argparse.Namespace, step: int
) -> float:
    """Print an evaluation report's summary (and where it and the video went); log it to
    ``--tensorboard`` at the model's training ``step``."""
    print(report.summary())
    if getattr(args, "tensorboard", None) is not None:
        from lewm_mpc.tensorboard import TensorBoardLog

        fields = ("success_rate", "steps_to_success_mean", "latency_p50_s", "latency_p95_s",
                  "energy_evals_per_plan")  # fmt: skip
        with TensorBoardLog(args.tensorboard) as board:
            board.scalars(step, {name: getattr(report, name) for name in fields}, "eval")
        print(f"tensorboard: {args.tensorboard}")
    if out is not None:
        print(f"report: {report.save(out)}")
    if video is not None:
        outcome = "success" if report.pairs[0].success else "failure"
        print(f"video: {video} (first pair: {outcome})")
    return report.success_rate


def _evaluate_heldout(
    args: argparse.Namespace, model_dir: Path, out: Path | None, video: Path | None
) -> float:
    """``eval`` without a dataset: pairs from seeded held-out episodes of the env's data policy
    (the one on the model's card, else the env's default)."""
    import torch

    from lewm_mpc.envs import get_env_spec
    from lewm_mpc.evaluation import EvalConfig, evaluate_pairs, heldout_pairs, random_goal_pairs
    from lewm_mpc.models import WorldModel
    from lewm_mpc.models.device import resolve_device
    from lewm_mpc.models.pretrained import is_pretrained, read_card

    model = WorldModel.load(model_dir, resolve_device(args.device))
    meta = model.run_meta
    if meta.env_id is None:
        raise ValueError(
            f"the model in {model_dir} records neither its dataset nor its environment; pass "
            "its dataset with --data PATH"
        )
    spec = get_env_spec(meta.env_id)
    if video is not None and meta.obs_mode != "pixels":
        raise ValueError("--video needs a pixel model")
    card = read_card(model_dir)
    policy = None if card is None else card.data_policy
    if getattr(args, "goals", "offset") == "random":
        pairs, skipped = random_goal_pairs(spec, args.pairs, args.eval_seed, meta.env_config)
        print(f"pairs: {len(pairs)} with goals anywhere in {spec.name} (seeded env resets)")
    else:
        pairs, skipped = heldout_pairs(
            spec, args.pairs, args.eval_seed, policy, meta.env_config, args.goal_offset
        )
        why = "a shipped model" if is_pretrained(model_dir) else "the model records no dataset"
        print(
            f"pairs: {len(pairs)} from regenerated held-out {spec.name} episodes "
            f"({policy or spec.expert_names[0]} data policy; {why})"
        )
    config = EvalConfig(
        num_pairs=args.pairs, goal_offset=args.goal_offset, budget=args.budget,
        seed=args.eval_seed, deadline_s=args.deadline, goals=getattr(args, "goals", "offset"),
    )  # fmt: skip

    planner = _hierarchical(args, _planner(args, model, spec), model_dir, None)
    with torch.inference_mode():
        report = evaluate_pairs(
            planner, pairs, spec, config, meta.obs_mode, meta.env_config,
            skipped, on_episode=_first_video_saver(video),
        )  # fmt: skip
    return _print_report(report, out, video, args, meta.step)


def _hierarchical(args: argparse.Namespace, planner: Any, model_dir: Path, data: Path | None
                  ) -> Any:  # fmt: skip
    """``--hierarchical``: the planner reaching subgoals of a graph of the training latents."""
    if not getattr(args, "hierarchical", False):
        return planner
    from lewm_mpc.planners.hierarchical import HierarchicalPlanner, LatentGraph
    from lewm_mpc.runs import load_run

    run = load_run(model_dir, data)
    graph = LatentGraph.from_dataset(planner.model, run.dataset, run.train_ids)
    print(f"hierarchical: a graph of {graph.num_nodes} latents of {len(run.train_ids)} episodes")
    return HierarchicalPlanner(planner, graph)


def _evaluate(
    args: argparse.Namespace,
    model_dir: Path,
    data: Path | None,
    out: Path | None,
    video: Path | None,
) -> float:
    import torch

    from lewm_mpc.evaluation import EvalConfig, evaluate
    from lewm_mpc.models.device import resolve_device
    from lewm_mpc.runs import load_run

    pairs_from = getattr(args, "pairs_from", "val")
    random_goals = getattr(args, "goals", "offset") == "random"
    if random_goals and not getattr(args, "offline", False):
        return _evaluate_heldout(args, model_dir, out, video)  # goals come from env resets
    if data is None and not getattr(args, "offline", False) and _without_dataset(model_dir):
        if pairs_from == "train":
            raise ValueError("--pairs-from train needs the model's dataset: pass --data PATH")
        return _evaluate_heldout(args, model_dir, out, video)
    run = load_run(model_dir, data, device=resolve_device(args.device))
    if getattr(args, "offline", False):
        _evaluate_offline(args, run, out)
        return float("nan")
    spec = run.require_env("closed-loop evaluation")
    model, dataset = run.model, run.dataset
    if video is not None and run.obs_mode != "pixels":
        raise ValueError("--video needs a pixel model")
    planner = _hierarchical(args, _planner(args, model, spec), model_dir, data)
    split = run.meta.split
    config = EvalConfig(
        num_pairs=args.pairs, goal_offset=args.goal_offset, budget=args.budget,
        seed=args.eval_seed, deadline_s=args.deadline, pairs_from=pairs_from,
        **({} if split is None else {"val_fraction": split.val_fraction, "split_seed": split.seed}),
    )  # fmt: skip

    with torch.inference_mode():
        report = evaluate(
            planner,
            dataset,
            spec,
            config,
            obs_mode=run.obs_mode,
            on_episode=_first_video_saver(video),
            episode_ids=run.val_ids,
        )
    return _print_report(report, out, video, args, run.meta.step)


def cmd_eval(args: argparse.Namespace) -> None:
    _load_planners(args)
    _evaluate(args, args.model, args.data, args.out, args.video)


def cmd_demo(args: argparse.Namespace) -> None:
    from lewm_mpc.data.collection import collect_dataset

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
