"""``lewm-mpc eval``: planning on held-out start/goal pairs, or (``--offline``) open-loop
prediction error and linear-probe R² on held-out episodes, no simulator.

The argument groups ``eval`` shares with ``train`` and ``demo`` (planner, evaluation protocol,
TensorBoard) are defined here too; ``demo`` evaluates its model with :func:`_evaluate`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lewm_mpc.argtypes import non_negative_int, positive_float, positive_int

if TYPE_CHECKING:
    from lewm_mpc.envs import EnvSpec
    from lewm_mpc.planners.base import Planner
    from lewm_mpc.runs import Run


def _add_planner_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "planner", "budget flags left out keep the planner's (or the preset's) own values"
    )
    group.add_argument(
        "--planner",
        default="cem",
        help="registry name: cem (default) | mppi | cmaes | gradient | hybrid | one a --plugin "
        "registers",
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
    group.add_argument(
        "--covariance", choices=("diagonal", "full"), default=None,
        help="CEM/MPPI sampling covariance (diagonal; full: over the whole plan)",
    )  # fmt: skip
    group.add_argument(
        "--polish-steps", type=non_negative_int, default=None,
        help="CEM/MPPI/CMA-ES: L-BFGS evaluations refining the best sampled plan (an env's "
        "reference budget: 0, LeWorldModel's CEM; the planners' own default: 50)",
    )  # fmt: skip
    group.add_argument(
        "--polish-restarts", type=count, default=None,
        help="CEM/MPPI/CMA-ES: descents the polish runs side by side, from the best sampled "
        "plan and from perturbations of it by the sampling distribution's spread (4)",
    )  # fmt: skip
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``eval`` arguments."""
    parser.add_argument(
        "--model", type=Path, required=True,
        help="run/checkpoint directory, or a shipped model: pretrained:ENV",
    )  # fmt: skip
    parser.add_argument(
        "--data", type=Path, default=None,
        help="dataset .h5 (default: the one the model was trained on, if unchanged; for a "
        "shipped model or one that records none, pairs come from regenerated held-out episodes)",
    )  # fmt: skip
    parser.add_argument(
        "--offline", action="store_true",
        help="no simulator: open-loop k-step prediction error and linear-probe R² on the "
        "model's held-out episodes",
    )  # fmt: skip
    parser.add_argument(
        "--offline-horizon", type=positive_int, default=5, help="--offline: model steps K (5)"
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON report path")
    parser.add_argument("--video", type=Path, default=None, help="mp4/gif of the first pair")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    _add_eval_args(parser, pairs=50)
    _add_tensorboard_arg(parser, "the results (at the model's training step)")
    parser.add_argument(
        "--pairs-from",
        choices=("val", "train", "regenerated"),
        default="val",
        help="episodes the start/goal pairs come from: val = held out (default), train = the "
        "training episodes, as LeWorldModel evaluates (report it apart), regenerated = seeded "
        "held-out episodes of the data policy made afresh, the pairs a shipped model is "
        "measured on (to compare any model with it on the same pairs)",
    )
    parser.add_argument(
        "--solved-starts", choices=("skip", "keep"), default="skip",
        help="pairs whose start already satisfies the success test: skip = drawn again and "
        "counted (default), keep = kept and counted as successes, as LeWorldModel evaluates "
        "(report it apart)",
    )  # fmt: skip
    _add_planner_args(parser)


def _load_planners(args: argparse.Namespace) -> None:
    """Import the ``--plugin`` modules, then check ``--planner``: a plugin may register it."""
    from lewm_mpc.planners.plugins import load_plugins
    from lewm_mpc.planners.registry import get_planner_entry

    load_plugins(args.plugin)
    if args.preset is None and not getattr(args, "offline", False):
        get_planner_entry(args.planner)  # an unknown name: the message lists the known ones


def _planner(args: argparse.Namespace, model: object, spec: EnvSpec | None = None) -> Planner:
    """The planner the flags ask for: ``--preset``, else ``--planner`` at the env's reference
    budget (``spec.budget``, for the fields the planner has and takes:
    ``reference_budget_fields``) or its own defaults; budget flags given on the command line
    override either."""
    from lewm_mpc.energies import GoalDistance
    from lewm_mpc.planners.presets import build_planner
    from lewm_mpc.planners.registry import get_planner_entry, make_planner

    fields = {
        "horizon": args.horizon, "num_samples": args.samples, "iterations": args.iterations,
        "topk": args.topk, "receding_horizon": args.receding, "covariance": args.covariance,
        "polish_steps": args.polish_steps, "polish_restarts": args.polish_restarts,
    }  # fmt: skip
    overrides = {name: value for name, value in fields.items() if value is not None}
    overrides["seed"] = args.planner_seed
    if args.running_weight is not None:
        overrides["energy"] = GoalDistance(args.running_weight)
    if args.preset is not None:
        return build_planner(model, args.preset, **overrides)
    overrides.setdefault("energy", GoalDistance())
    if spec is not None:
        config_class = get_planner_entry(args.planner).config_class
        overrides = {**spec.budget.fields_for(config_class), **overrides}
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


def _recorded_data_policy(meta: Any) -> str | None:
    """The data policy of the dataset a model records, if that file is still there."""
    from lewm_mpc.data import EpisodeDataset

    if meta.dataset is None or not Path(meta.dataset.path).is_file():
        return None
    return EpisodeDataset.load(meta.dataset.path).meta.data_policy


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
    policy = card.data_policy if card is not None else _recorded_data_policy(meta)
    solved_starts = getattr(args, "solved_starts", "skip")
    keep_solved = solved_starts == "keep"
    if getattr(args, "goals", "offset") == "random":
        pairs, skipped = random_goal_pairs(
            spec, args.pairs, args.eval_seed, meta.env_config, keep_solved
        )
        print(f"pairs: {len(pairs)} with goals anywhere in {spec.name} (seeded env resets)")
    else:
        pairs, skipped = heldout_pairs(
            spec, args.pairs, args.eval_seed, policy, meta.env_config, args.goal_offset,
            keep_solved,
        )  # fmt: skip
        why = "a shipped model" if is_pretrained(model_dir) else "the model records no dataset"
        if getattr(args, "pairs_from", "val") == "regenerated":
            why = "--pairs-from regenerated"
        print(
            f"pairs: {len(pairs)} from regenerated held-out {spec.name} episodes "
            f"({policy or spec.expert_names[0]} data policy; {why})"
        )
    config = EvalConfig(
        num_pairs=args.pairs, goal_offset=args.goal_offset, budget=args.budget,
        seed=args.eval_seed, deadline_s=args.deadline, goals=getattr(args, "goals", "offset"),
        solved_starts=solved_starts,
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
    if (random_goals or pairs_from == "regenerated") and not getattr(args, "offline", False):
        return _evaluate_heldout(args, model_dir, out, video)  # no dataset needed
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
        solved_starts=getattr(args, "solved_starts", "skip"),
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


def run(args: argparse.Namespace) -> None:
    """Run ``lewm-mpc eval``: load the ``--plugin`` planners, then evaluate."""
    _load_planners(args)
    _evaluate(args, args.model, args.data, args.out, args.video)
