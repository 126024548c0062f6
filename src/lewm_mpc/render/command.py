"""``lewm-mpc render``: one MPC episode on a held-out pair, rendered with the imagined plan.

The probe (latents -> the env recipe's physical target) is fitted on the dataset's training
split; the pair comes from its validation split (the evaluation protocol's pairs). A shipped
model (the default, ``pretrained:<env>``) uses a small regenerated dataset (``load_run``).
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lewm_mpc.argtypes import non_negative_int, positive_float, positive_int
from lewm_mpc.planners.registry import get_planner_entry, make_planner, planner_names

DEMO_MODEL = Path("runs/demo/model")  # the Two-Room model `make demo` trains
DISPLAY_SIZE = 256  # px: video frames are rendered at this side, not at the model's 64 px
# --smoke budgets by registry name (other registered planners run at their defaults).
SMOKE_BUDGETS: dict[str, dict[str, int]] = {
    "cem": {"num_samples": 16, "iterations": 2, "topk": 4},
    "mppi": {"num_samples": 16, "iterations": 2},
    "gradient": {"restarts": 2, "iterations": 3},
    "hybrid": {
        "restarts": 2,
        "iterations": 3,
        "cem_iterations": 2,
        "cem_samples": 16,
        "cem_topk": 4,
    },
}

DESCRIPTION = """\
Run one MPC episode on a held-out start/goal pair and write it as mp4 and/or GIF: the executed
frames beside the goal image; on the executed frame the plan in force (its predicted latents
decoded by a probe fitted on the training split and projected to pixels, fading into the
future), the true executed path and any keep-out box; below, the energy terms of each plan over
time and the success flag. The env renders the video's frames at --display-size px (256), whatever
the model's input size, and the overlay is projected at that resolution. The model defaults to
the env's shipped one (pretrained:ENV), which needs no dataset: the probe and the pair come from
a few seeded episodes of its data policy, regenerated once into a cache ($LEWM_MPC_CACHE, else
~/.cache/lewm_mpc). Envs without a shipped model default to the model of `lewm-mpc bench`
(runs/bench/ENV/model)."""


def _display_size(text: str) -> int:
    value = int(text)
    if not 16 <= value <= 1024:
        raise argparse.ArgumentTypeError(f"must be in [16, 1024], got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``render`` arguments."""
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add = parser.add_argument
    add("--env", default="tworoom", help="tworoom (default) | reacher | pointmass | pusht | cube")
    add(
        "--model",
        type=Path,
        help="checkpoint folder or pretrained:ENV (default: pretrained:ENV if shipped, else "
        "the benchmark's, runs/bench/ENV/model)",
    )
    add(
        "--data",
        type=Path,
        help="the model's dataset .h5 (default: the one the model records; regenerated "
        "episodes for a shipped model)",
    )
    add(
        "--planner",
        default="cem",
        type=str.lower,
        choices=planner_names(),
        help="a registered planner (default: cem), at its default budget",
    )
    add("--pair", type=non_negative_int, default=0, help="index of the held-out pair (default 0)")
    add(
        "--hierarchical", action="store_true",
        help="plan through subgoals of a latent graph of the training episodes (lm."
        "HierarchicalPlanner); each plan's subgoal is drawn as an orange disc",
    )  # fmt: skip
    add(
        "--seed",
        type=non_negative_int,
        default=0,
        help="pair sampling, probe and planner seed (default 0)",
    )
    add("--steps", type=positive_int, default=50, help="env-step budget (default 50)")
    add("--goal-offset", type=positive_int, default=25, help="env steps start -> goal (default 25)")
    add(
        "--out",
        type=Path,
        nargs="+",
        default=[Path("episode.mp4")],
        help="one or more .mp4/.gif files (default: episode.mp4)",
    )
    add(
        "--display-size",
        type=_display_size,
        default=DISPLAY_SIZE,
        help=f"side in px at which the env renders the video's frames, whatever the model's input "
        f"size (default {DISPLAY_SIZE})",
    )
    add(
        "--scale",
        type=positive_int,
        default=1,
        help="integer upscaling of those frames (default 1)",
    )
    add("--fps", type=positive_int, default=10, help="frames per second (default 10)")
    add("--probe", default="mlp", choices=("mlp", "linear"), help="probe kind (default mlp)")
    add(
        "--probe-samples",
        type=positive_int,
        default=4000,
        help="frames to fit it on (default 4000)",
    )
    add(
        "--keepout",
        action="store_true",
        help="Two-Room: hard keep-out box across the straight path (probe-based guardrail)",
    )
    add(
        "--task",
        choices=("latent", "probed"),
        help="task energy: GoalDistance in latent space, or ProbedGoalDistance through the probe "
        "(default: probed with --keepout, as in benchmarks/tworoom_guardrails.py, else latent)",
    )
    add("--box-half", type=positive_float, default=0.07, help="keep-out half side (default 0.07)")
    add("--margin", type=float, help="keep-out safety margin (default: calibrated, 99%%)")
    add("--device", default="auto", help="auto (default) | cpu | cuda")
    add(
        "--smoke",
        action="store_true",
        help="tiny data + model in a temp dir, tiny budgets, linear probe, small keep-out box",
    )


@dataclass(frozen=True)
class Rendered:
    """What ``render`` produced."""

    paths: tuple[Path, ...]
    success: bool
    steps: int
    plans: int


def run_from_args(args: argparse.Namespace) -> Rendered:
    """Validate the arguments, run the episode and write the videos."""
    from lewm_mpc.envs import get_env_spec
    from lewm_mpc.render.video import check_video_path

    spec = get_env_spec(args.env)  # a clear error for an unknown env
    paths = tuple(check_video_path(path) for path in args.out)
    if args.keepout and spec.name != "tworoom":
        raise ValueError(f"--keepout is defined for tworoom only, not {spec.name}")
    if args.pair < 0:
        raise ValueError(f"--pair must be >= 0, got {args.pair}")
    if args.smoke:
        from lewm_mpc.recipes import SMOKE_NOTICE

        print(SMOKE_NOTICE)
    with tempfile.TemporaryDirectory() as scratch:
        if args.smoke:
            from lewm_mpc.recipes import build_from_recipe, smoke_recipe

            model_dir, data = build_from_recipe(smoke_recipe(spec.name), scratch, args.seed)
        else:
            from lewm_mpc.models.pretrained import resolve_model_path

            model = default_model(spec.name) if args.model is None else args.model
            model_dir = resolve_model_path(model)
            data = args.data  # None: the dataset the model records (regenerated if shipped)
        result = _render(args, spec, Path(model_dir), data, paths)
    outcome = "success" if result.success else "no success"
    print(f"{spec.name} {args.planner}: {outcome} after {result.steps} steps, {result.plans} plans")
    for path in result.paths:
        print(f"video: {path}")
    return result


def default_model(env: str) -> str | Path:
    """The model ``render`` uses without ``--model``: the env's shipped one, else the model
    of ``lewm-mpc bench`` (``make demo``'s for Two-Room).

    Raises:
        FileNotFoundError: Neither is there; the message names the flags to pass.
    """
    from lewm_mpc.bench.jobs import default_source_paths
    from lewm_mpc.models.pretrained import PREFIX, pretrained_names
    from lewm_mpc.models.run_dir import checkpoint_dir

    if env in pretrained_names():
        return f"{PREFIX}{env}"
    path = DEMO_MODEL if env == "tworoom" else default_source_paths(env)[0]
    if checkpoint_dir(path) is None:
        raise FileNotFoundError(
            f"no model is shipped for {env} and there is none at {path}; pass --model DIR "
            "(a checkpoint folder) and, if it does not record its dataset, --data PATH"
        )
    return path


def _render(
    args: argparse.Namespace,
    spec: Any,
    model_dir: Path,
    data: Path | None,
    paths: tuple[Path, ...],
) -> Rendered:
    import lewm_mpc as lm
    from lewm_mpc.energies import (
        KeepOutBox,
        ProbedGoalDistance,
        calibrate_probe_margin,
        fit_probe_from_dataset,
    )
    from lewm_mpc.envs.two_room_keepout import KeepOutScenario
    from lewm_mpc.evaluation import EvalConfig, run_pair, sample_pairs
    from lewm_mpc.models.device import resolve_device
    from lewm_mpc.models.run_dir import checkpoint_dir
    from lewm_mpc.recipes import get_recipe
    from lewm_mpc.render import (
        RegionBox,
        ScaledView,
        display_frames,
        render_episode,
        view_for_env,
        write_video,
    )
    from lewm_mpc.runs import load_run

    if checkpoint_dir(model_dir) is None:
        raise FileNotFoundError(
            f"no model checkpoint in {model_dir} (no config.json, no checkpoints/step-<N>/); "
            "pass --model DIR or --model pretrained:ENV"
        )
    if data is not None and not data.is_file():
        raise FileNotFoundError(f"dataset {data} does not exist; pass --data PATH")
    run = load_run(model_dir, data, device=resolve_device(args.device), progress=True)
    model, dataset = run.model, run.dataset
    if run.regenerated:
        print(
            f"data: {dataset.num_episodes} regenerated {spec.name} episodes "
            f"({dataset.meta.data_policy} data policy; the model comes without its dataset), "
            f"{run.data_path}"
        )
    if run.env_spec is None or run.env_spec.gym_id != spec.gym_id:
        raise ValueError(f"{run.data_path} holds {dataset.meta.env_id}, not {spec.gym_id}")
    if model.config.obs_mode != "pixels":
        raise ValueError("render needs a pixel model (its frames are the video)")
    train_ids, val_ids = run.train_ids, run.val_ids  # the model's split
    split = run.meta.split
    val_fraction, split_seed = (0.1, 0) if split is None else (split.val_fraction, split.seed)
    recipe = get_recipe(spec.name)
    probe = fit_probe_from_dataset(
        model,
        dataset,
        train_ids,
        recipe.probe_target,
        kind="linear" if args.smoke else args.probe,  # smoke: closed form, no MLP training
        max_samples=args.probe_samples,
        seed=args.seed,
    )
    config = EvalConfig(
        num_pairs=args.pair + 1,
        goal_offset=args.goal_offset,
        budget=args.steps,
        seed=args.seed,
        val_fraction=val_fraction,
        split_seed=split_seed,
    )
    margin = args.margin
    if args.keepout and margin is None and not args.smoke:  # 99% of held-out probed errors
        margin = calibrate_probe_margin(model, probe, dataset, val_ids, max_windows=500).margin
    scenario = KeepOutScenario(args.box_half, margin or 0.0)
    if args.smoke:  # smoke datasets hold short moves: a smaller box and distance still fit
        scenario = KeepOutScenario(0.03, 0.01, min_distance=0.1, clearance=0.02)
    accept = scenario.accepts if args.keepout else None
    pairs, _ = sample_pairs(dataset, val_ids, spec, config, accept)
    pair = pairs[args.pair]
    guardrails, regions = [], []
    if args.keepout:
        low, high = scenario.box(pair.start_state, pair.goal_state)
        box = KeepOutBox(probe, tuple(low), tuple(high), scenario.margin, substeps=5)
        guardrails = [lm.Guardrail(box, name="keepout", weight=1.0, hard=True)]
        regions = [RegionBox(tuple(low), tuple(high))]
    task = args.task or ("probed" if args.keepout else "latent")
    energy = ProbedGoalDistance(probe) if task == "probed" else lm.GoalDistance()
    # the env's reference budget (LeWorldModel's CEM), as ``lewm-mpc eval`` plans
    budget = spec.budget.fields_for(get_planner_entry(args.planner).config_class)
    budget.update(SMOKE_BUDGETS.get(args.planner, {}) if args.smoke else {})
    planner = make_planner(
        args.planner, model, seed=args.seed, energy=energy, guardrails=guardrails, **budget
    )
    if args.hierarchical:  # subgoals from the training latents, pruned by the same guardrails
        graph = lm.LatentGraph.from_dataset(model, dataset, train_ids, guardrails=guardrails)
        planner = lm.HierarchicalPlanner(planner, graph)
    env = spec.make_for_budget(config.budget, "pixels", dataset.meta.env_config)
    try:
        episode = run_pair(env, planner, pair, config)
        size = args.display_size  # the model saw env.unwrapped.image_size px; people see this
        frames = render_episode(
            episode,
            probe,
            ScaledView(view_for_env(env), size / env.unwrapped.image_size),
            frames=display_frames(env, episode.states, size),
            goal_frame=display_frames(env, pair.goal_state[None], size)[0],
            regions=regions,
            executed=recipe.probe_target(episode.states),
            scale=args.scale,
            title=f"{spec.name} {args.planner}"
            + (" + subgoals" if args.hierarchical else "")
            + (" (smoke run)" if args.smoke else ""),
        )
    finally:
        env.close()
    written = tuple(write_video(path, frames, fps=args.fps) for path in paths)
    return Rendered(written, episode.succeeded, len(episode.actions), len(episode.plans))
