"""Ablation queue: planning success of recipe variants for one env, one lever at a time.

Each variant of ``VARIANTS[<env>]`` (edit the lists below) names a data policy, data size,
episode length, collection ``action_block``, image size, training length, model overrides and a
planner. The variants run in order as a resumable queue of stages:

1. ``data``: collect the dataset (``collect_dataset``), shared by every variant asking for the
   same one: ``<work>/<env>/data/<policy>-<episodes>ep-<steps>st-b<block>-<size>px.h5``;
2. ``train``: train the model (``lewm_mpc.training.train``, which resumes from its run dir),
   shared likewise: ``<work>/<env>/models/<data key>-<train key>/``; planner-only variants
   reuse a trained model;
3. ``probe``: held-out R² of a linear probe latent -> block pose (PushT: block xy and the
   cos/sin of its angle; Cube: cube xyz);
4. ``select``: the variant's planner (default: the env's reference budget, CEM 300 x 30, top
   30, horizon 5, replanning every block) on ``--pairs`` **validation pairs** from the model's
   held-out episodes, drawn with ``--select-seed`` (default 1), a seed different from the
   reporting seed 0. Recipes are picked on these; the final report of a chosen recipe uses the
   standard seed-0 test pairs (``env_success.py``, ``lewm-mpc eval``), never these;
5. ``common``: the same planner on one pair set shared by every variant: pairs (same seed) from
   the held-out episodes of the reference variant's dataset. ``select`` pairs come from each
   data policy's own episodes, so only these rows compare models trained on different data.
   For a variant trained on the reference dataset they are its ``select`` pairs, whose result
   the row copies (``same_as_select``).

Collection seeds: a dataset of policy ``p`` (index ``i`` in the env's data policies) with ``E``
episodes is collected with seed ``E + 100000 * i``. Datasets of one size and policy hold the same
trajectories (the image-size, action-block and episode-length levers are paired comparisons)
and share the training split; datasets of other sizes or policies share no episode with the
reference, so no model trains on the episodes the common pairs come from (each ``common`` row
records the overlap, 0 by construction). A variant with ``grows=N`` extends the dataset of ``N``
episodes instead (same seed, a copy of it plus the missing episodes:
``<policy>-<episodes>ep-from<N>-...h5``), so a data-size point costs only its new episodes.

Every finished (variant, stage) appends one JSON line to ``<work>/<env>/results.jsonl`` (with
the variant's settings: editing a variant reruns its stages); a rerun skips finished stages.

    MUJOCO_GL=egl .venv/bin/python benchmarks/ablation.py --env pusht
    MUJOCO_GL=egl .venv/bin/python benchmarks/ablation.py --env cube --only baseline,mppi
    MUJOCO_GL=egl .venv/bin/python benchmarks/ablation.py --env pusht --list
    MUJOCO_GL=egl .venv/bin/python benchmarks/ablation.py --env pusht --only train-10000 --models
    MUJOCO_GL=egl .venv/bin/python benchmarks/ablation.py --env pusht --smoke

Writes ``benchmarks/results/ablation_<env>.md`` and ``.json`` after each variant. ``--smoke``
runs two tiny variants into ``runs/ablation_smoke/`` (results written there too).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

import lewm_mpc as lm
from lewm_mpc.atomic import atomic_write, write_text_atomic
from lewm_mpc.data import EpisodeDataset
from lewm_mpc.data.collection import collect_dataset
from lewm_mpc.energies import (
    EnergySum,
    GoalDistance,
    ProbedGoalDistance,
    fit_probe_from_dataset,
)
from lewm_mpc.envs import EnvSpec, get_env_spec
from lewm_mpc.evaluation import EvalConfig, EvalReport, evaluate, evaluate_pairs, sample_pairs
from lewm_mpc.models.config import named_config
from lewm_mpc.training import TrainConfig, train

Overrides = tuple[tuple[str, Any], ...]  # (field, value) overrides
ENERGIES = ("latent", "probed-goal", "latent+probed-goal")


@dataclass(frozen=True)
class Variant:
    """One recipe: data, model, training and planner.

    Attributes:
        name: unique within its env's list.
        policy: data policy (``EnvSpec.expert_names``).
        episodes: episodes collected.
        episode_steps: env actions per episode.
        action_block: env actions per stored frame at collection (``collect_dataset``).
        image_size: side of the collected (and encoded) frames.
        env_overrides: other env config fields of the collection (e.g. Cube's ``mesh_cell``),
            as (field, value) pairs.
        train_steps: optimizer steps.
        model_overrides: ``named_config("cpu", ...)`` fields, as (field, value) pairs.
        train_overrides: ``TrainConfig`` fields (e.g. ``sigreg_weight``), as (field, value)
            pairs.
        planner: planner registry name (``lm.make_planner``).
        planner_overrides: planner config fields over the env's reference budget.
        energy: the planner's task energy: ``"latent"`` (squared latent distance to the goal,
            LeWorldModel's), ``"probed-goal"`` (squared distance of the env's goal features,
            e.g. PushT's positions and block angle in units of the success thresholds, read
            from the latents by a linear probe fitted on the training episodes) or
            ``"latent+probed-goal"`` (their sum, the probed term weighted by ``probe_weight``).
        probe_weight: the probed term's weight in ``"latent+probed-goal"``.
        grows: ``None`` (an independent dataset), or the size of a smaller dataset of the same
            policy this one extends: its seed is that dataset's, so its first ``grows``
            episodes are that dataset's, copied when it exists, and only the rest are collected.
    """

    name: str
    policy: str
    episodes: int
    episode_steps: int
    action_block: int = 1
    image_size: int = 64
    env_overrides: Overrides = ()
    train_steps: int = 3000
    model_overrides: Overrides = ()
    train_overrides: Overrides = ()
    planner: str = "cem"
    planner_overrides: Overrides = ()
    energy: str = "latent"
    probe_weight: float = 1.0
    grows: int | None = None

    def data_key(self) -> str:
        grown = f"-from{self.grows}" if self.grows is not None else ""
        env = "".join(f"-{field}{_fmt(value)}" for field, value in self.env_overrides)
        return (f"{self.policy}-{self.episodes}ep{grown}-{self.episode_steps}st-"
                f"b{self.action_block}-{self.image_size}px{env}")  # fmt: skip

    def model_key(self) -> str:
        parts = [f"{field}{_fmt(value)}"
                 for field, value in (*self.model_overrides, *self.train_overrides)]  # fmt: skip
        return "-".join([self.data_key(), f"{self.train_steps}steps", *parts])


def _fmt(value: Any) -> str:
    return "x".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _baseline(env: str) -> Variant:
    """Today's recipe of ``env`` (its ``EnvSpec.recipe``, first data policy, CEM reference)."""
    spec = get_env_spec(env)
    recipe = spec.recipe
    return Variant("baseline", spec.expert_names[0], recipe.episodes, recipe.episode_steps,
                   train_steps=recipe.train_steps)  # fmt: skip


def _levers(reference: Variant, changes: dict[str, dict[str, Any]]) -> list[Variant]:
    return [replace(reference, name=name, **fields) for name, fields in changes.items()]


SMALL = (("cnn_channels", (8, 16, 32, 32)), ("latent_dim", 32), ("predictor_hidden", 256))
LARGE = (("cnn_channels", (32, 64, 128, 128)), ("latent_dim", 128), ("predictor_hidden", 1024))
AUGMENT_STATE_AUX = (("augment", True), ("state_loss_weight", 1.0))  # PushT's shipped training

# The reference each lever changes (edit to move the whole table): today's recipe; for Cube
# collected in blocks of 5 actions (only the frames a frameskip-5 model uses are rendered, which
# is 95% of a Cube step: same trajectories, 4x faster), so that 1000 episodes fit in an hour.
REFERENCE = {"pusht": _baseline("pusht"), "cube": replace(_baseline("cube"), action_block=5)}

VARIANTS: dict[str, list[Variant]] = {
    "pusht": [
        REFERENCE["pusht"],
        *_levers(REFERENCE["pusht"], {
            "policy-goal": {"policy": "goal"},
            "episodes-150": {"episodes": 150},
            "episodes-600": {"episodes": 600},
            "train-10000": {"train_steps": 10000},
            "episodes-2000+train-20000": {"episodes": 2000, "train_steps": 20000},
            "history-3": {"model_overrides": (("history", 3),)},
            "width-small": {"model_overrides": SMALL},
            "width-large": {"model_overrides": LARGE},
            "image-96": {"image_size": 96},
            "block-5": {"action_block": 5},
            "cem-horizon-3": {"planner_overrides": (("horizon", 3),)},
            "cem-horizon-8": {"planner_overrides": (("horizon", 8),)},
            "cem-100x10": {"planner_overrides": (("num_samples", 100), ("iterations", 10),
                                                 ("topk", 10))},
            "cem-600x30": {"planner_overrides": (("num_samples", 600), ("topk", 60))},
            "mppi": {"planner": "mppi"},
            "cem-full-covariance": {"planner_overrides": (("covariance", "full"),)},
            "sigreg-0.3": {"train_overrides": (("sigreg_weight", 0.3),)},
            "sigreg-1.0": {"train_overrides": (("sigreg_weight", 1.0),)},
            "state-aux-0.1": {"train_overrides": (("state_loss_weight", 0.1),)},
            "state-aux-1.0": {"train_overrides": (("state_loss_weight", 1.0),)},
            "rollout-loss": {"train_overrides": (("rollout_weight", 1.0), ("num_frames", 6))},
            "probed-goal": {"energy": "probed-goal"},
            "state-aux-0.1+probed-goal": {"train_overrides": (("state_loss_weight", 0.1),),
                                     "energy": "probed-goal"},
            "state-aux-1.0+probed-goal": {"train_overrides": (("state_loss_weight", 1.0),),
                                     "energy": "probed-goal"},
            "augment": {"train_overrides": (("augment", True),)},
            "train-10000+augment": {"train_steps": 10000,
                                    "train_overrides": (("augment", True),)},
            "train-30000+augment": {"train_steps": 30000,
                                    "train_overrides": (("augment", True),)},
            "train-10000+augment-with-state-aux-1.0": {
                "train_steps": 10000,
                "train_overrides": AUGMENT_STATE_AUX},
            "train-30000+augment-with-state-aux-1.0": {
                "train_steps": 30000,
                "train_overrides": AUGMENT_STATE_AUX},
            "train-10000+augment-with-state-aux-1.0+probed-goal": {
                "train_steps": 10000, "energy": "probed-goal",
                "train_overrides": AUGMENT_STATE_AUX},
            "train-10000+augment-with-state-aux-1.0+probe-term-2": {
                "train_steps": 10000, "energy": "latent+probed-goal", "probe_weight": 2.0,
                "train_overrides": AUGMENT_STATE_AUX},
            "train-10000+augment-with-state-aux-1.0+history-3": {
                "train_steps": 10000, "model_overrides": (("history", 3),),
                "train_overrides": AUGMENT_STATE_AUX},
            "train-30000+augment-with-state-aux-1.0+history-3": {
                "train_steps": 30000, "model_overrides": (("history", 3),),
                "train_overrides": AUGMENT_STATE_AUX},
            "episodes-2000+train-20000+augment-with-state-aux-1.0": {
                "episodes": 2000, "train_steps": 20000,
                "train_overrides": AUGMENT_STATE_AUX},
        }),
    ],
    "cube": [
        REFERENCE["cube"],
        *_levers(REFERENCE["cube"], {
            "block-1": {"action_block": 1},
            "episodes-300": {"episodes": 300},
            "episodes-1000": {"episodes": 1000},
            "train-10000": {"train_steps": 10000},
            "episodes-1000+train-10000": {"episodes": 1000, "train_steps": 10000},
            "episodes-1000+coarse-meshes": {"episodes": 1000,
                                            "env_overrides": (("mesh_cell", 0.005),)},
            "episodes-1000+coarse-meshes+policy-ogbench-lewm": {
                "episodes": 1000, "policy": "ogbench-lewm",
                "env_overrides": (("mesh_cell", 0.005),)},
            "episodes-1000+coarse-meshes+policy-ogbench-lewm+state-aux-1.0": {
                "episodes": 1000, "policy": "ogbench-lewm",
                "env_overrides": (("mesh_cell", 0.005),),
                "train_overrides": (("state_loss_weight", 1.0),)},
            "episodes-1000+history-3": {"episodes": 1000, "model_overrides": (("history", 3),)},
            "episodes-1000+width-large": {"episodes": 1000, "model_overrides": LARGE},
            "episodes-2000+history-3": {"episodes": 2000, "model_overrides": (("history", 3),)},
            "episodes-2000+history-3+probe-term-2": {
                "episodes": 2000, "model_overrides": (("history", 3),),
                "energy": "latent+probed-goal", "probe_weight": 2.0},
            "episodes-2000+history-3+probe-term-8": {
                "episodes": 2000, "model_overrides": (("history", 3),),
                "energy": "latent+probed-goal", "probe_weight": 8.0},
            "episodes-2000+history-3+horizon-8": {
                "episodes": 2000, "model_overrides": (("history", 3),),
                "planner_overrides": (("horizon", 8),)},
            "episodes-2000+history-3+mppi": {
                "episodes": 2000, "model_overrides": (("history", 3),), "planner": "mppi"},
            "episodes-2000+history-3+cem-600x30": {
                "episodes": 2000, "model_overrides": (("history", 3),),
                "planner_overrides": (("num_samples", 600), ("topk", 60))},
            "episodes-1000+image-96": {"episodes": 1000, "image_size": 96},
            "episodes-4000+history-3": {"episodes": 4000, "grows": 2000,
                                        "model_overrides": (("history", 3),)},
            "episodes-8000+history-3": {"episodes": 8000, "grows": 2000,
                                        "model_overrides": (("history", 3),)},
            "episodes-4000+history-3+train-10000": {"episodes": 4000, "grows": 2000,
                                                    "train_steps": 10000,
                                                    "model_overrides": (("history", 3),)},
            "history-3": {"model_overrides": (("history", 3),)},
            "width-large": {"model_overrides": LARGE},
            "image-96": {"image_size": 96},
            "cem-horizon-8": {"planner_overrides": (("horizon", 8),)},
            "mppi": {"planner": "mppi"},
        }),
    ],
}  # fmt: skip

TINY_MODEL = (("cnn_channels", (8, 8, 8, 8)), ("latent_dim", 16), ("predictor_hidden", 32))
TINY_PLANNER = (("horizon", 2), ("num_samples", 8), ("iterations", 2))


def smoke_variants(env: str) -> list[Variant]:
    """Two seconds-scale variants: CEM, and MPPI on data collected in blocks of 5 actions."""
    policy = get_env_spec(env).expert_names[0]
    cem = Variant("smoke-cem", policy, 8, 40, train_steps=5, model_overrides=TINY_MODEL,
                  planner_overrides=(*TINY_PLANNER, ("topk", 2)))  # fmt: skip
    mppi = replace(cem, name="smoke-mppi-b5", action_block=5, planner="mppi",
                   planner_overrides=TINY_PLANNER)  # fmt: skip
    return [cem, mppi]


STAGES = ("data", "train", "probe", "select", "common")


def block_pose(env: str) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
    """The probed block pose: PushT block xy + (cos, sin) angle; else the env's probe target."""
    if env == "pusht":

        def pose(states: np.ndarray) -> np.ndarray:
            states = np.asarray(states, np.float64)
            angle = states[..., 4:5]
            return np.concatenate([states[..., 2:4], np.cos(angle), np.sin(angle)], axis=-1)

        return "block xy + (cos, sin) angle", pose
    probe = get_env_spec(env).probe
    return probe.name, probe.read


def data_seed(spec: EnvSpec, variant: Variant) -> int:
    """Collection seed: one per (policy, size), so datasets of other sizes or policies share no
    episode with each other; a dataset that grows a smaller one takes the smaller one's."""
    size = variant.episodes if variant.grows is None else variant.grows
    return size + 100_000 * spec.expert_names.index(variant.policy)


QUALIFIERS = {"grows": "episodes", "probe_weight": "energy"}  # shown with the field they qualify


def lever(variant: Variant, reference: Variant) -> str:
    """What ``variant`` changes relative to ``reference``, e.g. ``"episodes=600"``."""
    if replace(variant, name=reference.name) == reference:
        return "reference"
    changes = []
    for field in dataclasses.fields(Variant):
        if field.name in ("name", *QUALIFIERS):
            continue
        value, base = getattr(variant, field.name), getattr(reference, field.name)
        if value != base or any(
            getattr(variant, q) != getattr(reference, q)
            for q, owner in QUALIFIERS.items()
            if owner == field.name
        ):
            shown = ", ".join(f"{k}={_fmt(v)}" for k, v in value) if field.name.endswith(
                "overrides") else _fmt(value)  # fmt: skip
            if field.name == "episodes" and variant.grows is not None:
                shown += f" (grown from {variant.grows})"
            if field.name == "energy" and "+" in variant.energy:
                shown += f" (probed term x{_fmt(variant.probe_weight)})"
            changes.append(f"{field.name}: {shown}" if field.name.endswith("overrides")
                           else f"{field.name}={shown}")  # fmt: skip
    return "; ".join(changes)


class Results:
    """Finished (variant, stage) rows in a JSON-lines file, one appended per stage."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    self.rows.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut short by a killed run
                    continue

    def get(self, variant: Variant, stage: str) -> dict[str, Any] | None:
        """The latest row of ``variant``'s ``stage``, if recorded with its current settings."""
        settings = _plain(dataclasses.asdict(variant))
        for row in reversed(self.rows):
            if row["variant"] == variant.name and row["stage"] == stage:
                return row if _same_settings(row["settings"], settings) else None
        return None

    def shared(self, stage: str, key: str) -> dict[str, Any] | None:
        """The latest row of any variant's ``stage`` with the same data / model ``key``."""
        return next((r for r in reversed(self.rows) if r["stage"] == stage and r["key"] == key),
                    None)  # fmt: skip

    def adopt(self, summary: dict[str, Any], variants: Sequence[Variant]) -> int:
        """Record the finished stages of a written summary that this file lacks.

        The summary (``ablation_<env>.json``) is committed; the work folder may be lost. Rows are
        adopted only where the variant's settings are unchanged. Returns the rows adopted.
        """
        by_name = {variant.name: variant for variant in variants}
        adopted = 0
        for row in summary.get("rows", []):
            variant = by_name.get(row["variant"])
            if variant is None:
                continue
            if not _same_settings(row["settings"], _plain(dataclasses.asdict(variant))):
                continue
            keys = _stage_keys(variant)
            for stage in STAGES:
                if row.get(stage) is not None and self.get(variant, stage) is None:
                    self.add(variant, stage, keys[stage], {**row[stage], "adopted": True})
                    adopted += 1
        return adopted

    def add(self, variant: Variant, stage: str, key: str, result: dict[str, Any]) -> dict:
        row = _plain({"variant": variant.name, "stage": stage, "key": key,
                      "settings": dataclasses.asdict(variant), **result})  # fmt: skip
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = self.path.read_text() if self.path.exists() else ""
        with open(self.path, "a") as handle:
            if text and not text.endswith("\n"):
                handle.write("\n")
            handle.write(json.dumps(row) + "\n")
        self.rows.append(row)
        return row


def _same_settings(recorded: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether recorded settings are the current ones; a field added to :class:`Variant` since
    counts as its default (so adding a lever keeps every finished row)."""
    defaults = {f.name: _plain(f.default) for f in dataclasses.fields(Variant)
                if f.default is not dataclasses.MISSING}  # fmt: skip
    return all(recorded.get(name, defaults.get(name)) == value for name, value in current.items())


def _stage_keys(variant: Variant) -> dict[str, str]:
    """The data / model key each stage's result is shared under."""
    return {"data": variant.data_key(), **dict.fromkeys(STAGES[1:], variant.model_key())}


def _plain(value: Any) -> Any:
    """As read back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


class Queue:
    """Runs the stages of the variants of one env, sharing data, models and the common pairs."""

    def __init__(self, env: str, work: Path, args: argparse.Namespace, smoke: bool) -> None:
        self.spec = get_env_spec(env)
        self.work, self.args, self.smoke = work / self.spec.name, args, smoke
        self.results = Results(self.work / "results.jsonl")
        self.eval_config = EvalConfig(num_pairs=args.pairs, seed=args.select_seed,
                                      budget=10 if smoke else 50)  # fmt: skip
        self._common: tuple[list, int, np.ndarray] | None = None

    # ------------------------------------------------------------------ paths and configs
    def data_path(self, variant: Variant) -> Path:
        return self.work / "data" / f"{variant.data_key()}.h5"

    def model_dir(self, variant: Variant) -> Path:
        return self.work / "models" / variant.model_key()

    def train_config(self, variant: Variant) -> TrainConfig:
        if self.smoke:
            return TrainConfig(steps=variant.train_steps, batch_size=8, num_frames=2,
                               val_fraction=0.25, val_every=5, val_batches=1, checkpoint_every=5,
                               sigreg_projections=16, bn_calibration_batches=1, warmup_steps=1,
                               seed=self.args.seed)  # fmt: skip
        return TrainConfig(steps=variant.train_steps, seed=self.args.seed,
                           **dict(variant.train_overrides))  # fmt: skip

    def planner(self, variant: Variant, run: lm.Run) -> Any:
        budget = self.spec.budget
        fields: dict[str, Any] = {"horizon": budget.horizon, "num_samples": budget.num_samples,
                                  "iterations": budget.iterations, "seed": self.args.seed,
                                  "receding_horizon": budget.receding_horizon,
                                  "polish_steps": budget.polish_steps}  # fmt: skip
        if variant.planner == "cem":
            fields["topk"] = budget.topk
        fields.update(variant.planner_overrides)
        if variant.energy not in ENERGIES:
            raise ValueError(f"unknown energy {variant.energy!r}: one of {ENERGIES}")
        if "probed-goal" in variant.energy:
            probe = fit_probe_from_dataset(run.model, run.dataset, run.train_ids,
                                           self.spec.goal_features, kind="linear",
                                           seed=self.args.seed)  # fmt: skip
            probed = ProbedGoalDistance(probe)
            fields["energy"] = (
                probed
                if variant.energy == "probed-goal"
                else EnergySum((GoalDistance(), probed), (1.0, variant.probe_weight))
            )
        return lm.make_planner(variant.planner, run.model, **fields)

    # ------------------------------------------------------------------ stages
    def load(self, variant: Variant) -> lm.Run:
        """The variant's trained run; retrained (same seed) when its files are gone."""
        if not self.model_dir(variant).exists():
            self.stage_train(variant)
        return lm.load_run(self.model_dir(variant), self.collect(variant))

    def collect(self, variant: Variant) -> Path:
        path = self.data_path(variant)
        if variant.grows is not None and not path.exists():
            if not 0 < variant.grows < variant.episodes:
                raise ValueError(f"{variant.name}: grows={variant.grows} must be in "
                                 f"1 .. episodes - 1 = {variant.episodes - 1}")  # fmt: skip
            smaller = self._largest_seed_dataset(variant)
            if smaller is not None:  # the collection then only adds the missing episodes
                with atomic_write(path) as temporary:  # a killed copy leaves nothing behind
                    shutil.copyfile(smaller, temporary)
        return collect_dataset(
            self.spec.name, self.data_path(variant), variant.episodes, variant.episode_steps,
            data_seed(self.spec, variant), self.args.workers or self.spec.recipe.workers,
            progress=not self.smoke,
            env_config={"image_size": variant.image_size, **dict(variant.env_overrides)},
            policy=variant.policy, action_block=variant.action_block,
        )  # fmt: skip

    def _largest_seed_dataset(self, variant: Variant) -> Path | None:
        """The largest existing dataset ``variant`` grows (same seed, fewer episodes): the one of
        ``grows`` episodes or another that grew from it."""
        assert variant.grows is not None
        root = self.data_path(replace(variant, episodes=variant.grows, grows=None))
        found = {variant.grows: root} if root.exists() else {}
        marker = f"{variant.policy}-{variant.episodes}ep-"
        pattern = self.data_path(variant).name.replace(marker, f"{variant.policy}-*ep-")
        for path in self.data_path(variant).parent.glob(pattern):
            size = int(path.name[len(variant.policy) + 1 :].partition("ep-")[0])
            if size < variant.episodes:
                found[size] = path
        return found[max(found)] if found else None

    def stage_data(self, variant: Variant) -> dict[str, Any]:
        started = time.perf_counter()
        path = self.collect(variant)
        earlier = self.results.shared("data", variant.data_key())
        minutes = earlier["collect_minutes"] if earlier else (time.perf_counter() - started) / 60
        dataset = EpisodeDataset.load(path)
        return {"data_policy": variant.policy, "path": str(path), "frames": dataset.num_rows,
                "seed": data_seed(self.spec, variant), "collect_minutes": minutes}  # fmt: skip

    def stage_train(self, variant: Variant) -> dict[str, Any]:
        model_config = named_config("cpu", **dict(variant.model_overrides))
        summary = train(self.collect(variant), self.model_dir(variant), model_config,
                        self.train_config(variant), progress=not self.smoke)  # fmt: skip
        return {"model_dir": str(self.model_dir(variant)), "train_steps": summary.steps,
                "train_minutes": summary.seconds / 60, "val_loss": summary.val_loss,
                "val_prediction_loss": summary.val_prediction,
                "parameters": summary.num_parameters}  # fmt: skip

    def stage_probe(self, variant: Variant) -> dict[str, Any]:
        earlier = self.results.shared("probe", variant.model_key())
        if earlier is not None:
            return {k: earlier[k] for k in ("target", "r2_linear", "r2_per_output")}
        run = self.load(variant)
        name, target = block_pose(self.spec.name)
        probe = fit_probe_from_dataset(run.model, run.dataset, run.train_ids, target,
                                       kind="linear", seed=self.args.seed)  # fmt: skip
        return {"target": name, "r2_linear": float(probe.r2_mean),
                "r2_per_output": [float(r) for r in probe.r2]}  # fmt: skip

    def stage_select(self, variant: Variant) -> dict[str, Any]:
        run = self.load(variant)
        report = evaluate(self.planner(variant, run), run.dataset, self.spec,
                          self.eval_config, obs_mode=run.obs_mode, progress=not self.smoke,
                          episode_ids=run.val_ids)  # fmt: skip
        source = f"val episodes of {variant.data_key()}"
        return {"data_policy": variant.policy, "pairs_from": source, **_report(report)}

    def common_pairs(self) -> tuple[list, int, np.ndarray]:
        """Pairs (``select`` seed) from the held-out episodes of the reference dataset."""
        if self._common is None:
            reference = self.reference()
            dataset = EpisodeDataset.load(self.collect(reference))
            config = self.train_config(reference)
            _, val_ids = dataset.split(config.val_fraction, seed=config.seed)
            pairs, skipped = sample_pairs(dataset, val_ids, self.spec, self.eval_config)
            self._common = (pairs, skipped, val_ids)
        return self._common

    def stage_common(self, variant: Variant) -> dict[str, Any]:
        reference = self.reference()
        pairs, skipped, val_ids = self.common_pairs()
        run = self.load(variant)
        source = {"data_policy": variant.policy, "pairs_from":
                  f"val episodes of {reference.data_key()} (reference)"}  # fmt: skip
        same_split = np.array_equal(np.sort(run.val_ids), np.sort(val_ids))
        if variant.data_key() == reference.data_key() and same_split:
            select = self.results.get(variant, "select")  # the very same pairs
            if select is not None:
                kept = {k: v for k, v in select.items() if k not in (*_ROW_FIELDS, "pairs_from")}
                return {**kept, **source, "overlap": 0, "same_as_select": True}
        overlap = 0
        if data_seed(self.spec, variant) == data_seed(self.spec, reference):  # same trajectories
            overlap = sum(pair.episode in set(run.train_ids.tolist()) for pair in pairs)
        report = evaluate_pairs(self.planner(variant, run), pairs, self.spec,
                                self.eval_config, run.obs_mode, run.dataset.meta.env_config,
                                skipped, progress=not self.smoke)  # fmt: skip
        return {**source, **_report(report), "overlap": overlap, "same_as_select": False}

    # ------------------------------------------------------------------ queue
    def reference(self) -> Variant:
        return self.variants()[0] if self.smoke else REFERENCE[self.spec.name]

    def variants(self) -> list[Variant]:
        return smoke_variants(self.spec.name) if self.smoke else VARIANTS[self.spec.name]

    def run(self, variant: Variant) -> None:
        keys = _stage_keys(variant)
        for stage in STAGES:
            if self.results.get(variant, stage) is not None:
                print(f"{variant.name}: {stage} already finished", flush=True)
                continue
            started = time.perf_counter()
            result = getattr(self, f"stage_{stage}")(variant)
            self.results.add(variant, stage, keys[stage], result)
            print(f"{variant.name}: {stage} done ({time.perf_counter() - started:.0f} s)",
                  flush=True)  # fmt: skip

    def listing(self) -> str:
        lines = []
        for variant in self.variants():
            done = [s for s in STAGES if self.results.get(variant, s) is not None]
            lines.append(f"{variant.name:16s} {','.join(done) or '-':30s} "
                         f"{lever(variant, self.reference())}")  # fmt: skip
        return "\n".join(lines)

    def summary(self) -> dict[str, Any]:
        rows = []
        for variant in self.variants():
            stages = {s: self.results.get(variant, s) for s in STAGES}
            rows.append({"variant": variant.name, "lever": lever(variant, self.reference()),
                         "settings": _plain(dataclasses.asdict(variant)),
                         **{s: _strip(r) for s, r in stages.items()}})  # fmt: skip
        return {"env": self.spec.name, "reference": self.reference().name,
                "select_seed": self.args.select_seed, "pairs": self.args.pairs,
                "eval": dataclasses.asdict(self.eval_config), "rows": rows}  # fmt: skip


_ROW_FIELDS = ("variant", "stage", "key", "settings")


def _strip(row: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if row is None else {k: v for k, v in row.items() if k not in _ROW_FIELDS}


def _report(report: EvalReport) -> dict[str, Any]:
    return {"pairs": report.num_pairs, "successes": report.successes,
            "success_rate": report.success_rate, "ci95": list(report.ci95),
            "skipped_solved": report.skipped_solved,
            "steps_to_success_mean": report.steps_to_success_mean,
            "plan_p50_s": report.latency_p50_s, "plan_p95_s": report.latency_p95_s,
            "energy_evals_per_plan": report.energy_evals_per_plan,
            "minutes": report.seconds / 60, "planner": report.planner}  # fmt: skip


def _success(result: dict[str, Any] | None) -> tuple[str, str]:
    if result is None:
        return "-", "-"
    low, high = result["ci95"]
    steps = result["steps_to_success_mean"]
    return (f"{100 * result['success_rate']:.0f}% ({100 * low:.0f}-{100 * high:.0f}), "
            f"n={result['pairs']}", "-" if steps is None else f"{steps:.1f}")  # fmt: skip


def markdown(summary: dict[str, Any]) -> str:
    """The ablation table of one env."""
    lines = [
        f"# Ablation: {summary['env']} (reference: {summary['reference']})",
        "",
        f"Validation pairs (seed {summary['select_seed']}, {summary['pairs']} pairs, budget "
        f"{summary['eval']['budget']} env steps), for choosing a recipe; report a chosen recipe "
        "on the standard seed-0 test pairs. *Own val*: pairs from the held-out episodes of the "
        "variant's own dataset (its data policy); *common*: pairs from the held-out episodes of "
        "the reference dataset, the same for every row.",
        "",
        "| variant | lever | data policy | success, own val (95% CI) | steps | success, common "
        "(95% CI) | steps | train min | val pred. loss | probe R² block pose (linear) | "
        "plan p50 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in summary["rows"]:
        select, common = _success(row["select"]), _success(row["common"])
        train, probe = row["train"], row["probe"]
        p50 = row["select"]["plan_p50_s"] if row["select"] else None
        lines.append(
            f"| {row['variant']} | {row['lever']} | {row['settings']['policy']} | {select[0]} | "
            f"{select[1]} | {common[0]} | {common[1]} | "
            f"{'-' if train is None else format(train['train_minutes'], '.1f')} | "
            f"{'-' if train is None else format(train['val_prediction_loss'], '.4f')} | "
            f"{'-' if probe is None else format(probe['r2_linear'], '.3f')} | "
            f"{'-' if p50 is None else format(1000 * p50, '.0f') + ' ms'} |"
        )
    return "\n".join(lines) + "\n"


def write_summary(queue: Queue, out: Path) -> str:
    summary = queue.summary()
    out.mkdir(parents=True, exist_ok=True)
    name = f"ablation_{queue.spec.name}{'_smoke' if queue.smoke else ''}"
    write_text_atomic(out / f"{name}.json", json.dumps(summary, indent=1))
    table = markdown(summary)
    write_text_atomic(out / f"{name}.md", table)
    return table


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="pusht", choices=sorted(VARIANTS))
    parser.add_argument("--work", type=Path, help="default: runs/ablation[_smoke]")
    parser.add_argument("--out", type=Path, help="default: benchmarks/results (--smoke: work)")
    parser.add_argument("--pairs", type=int, default=None, help="default: 50 (2 with --smoke)")
    parser.add_argument("--select-seed", type=int, default=1, help="pair seed (not 0: test)")
    parser.add_argument("--only", default="", help="comma-separated variant names")
    parser.add_argument("--list", action="store_true", help="print variants and what is done")
    parser.add_argument(
        "--models",
        action="store_true",
        help="only make sure the variants' models exist (retrain lost ones)",
    )
    parser.add_argument("--smoke", action="store_true", help="two tiny variants, seconds")
    parser.add_argument("--workers", type=int, default=0, help="collection; 0: the recipe's")
    parser.add_argument("--seed", type=int, default=0, help="training and planner seed")
    args = parser.parse_args(argv)
    if args.select_seed == 0:
        parser.error("--select-seed 0 draws the test pairs; choose recipes on another seed")
    smoke_root = Path("runs/ablation_smoke")
    work = args.work or (smoke_root if args.smoke else Path("runs/ablation"))
    out = args.out or (work if args.smoke else Path("benchmarks/results"))
    args.pairs = args.pairs or (2 if args.smoke else 50)
    queue = Queue(args.env, work, args, args.smoke)
    written = out / f"ablation_{args.env}{'_smoke' if args.smoke else ''}.json"
    if written.exists():
        adopted = queue.results.adopt(json.loads(written.read_text()), queue.variants())
        if adopted:
            print(f"adopted {adopted} finished stages from {written}", flush=True)
    names = [v.name for v in queue.variants()]
    only = [name for name in args.only.split(",") if name]
    unknown = sorted(set(only) - set(names))
    if unknown:
        parser.error(f"unknown variants {unknown}; {args.env} has {names}")
    if args.list:
        print(queue.listing())
        return queue.summary()
    if args.models:
        for variant in queue.variants():
            if not only or variant.name in only:
                queue.load(variant)
                print(f"{variant.name}: {queue.model_dir(variant)}", flush=True)
        return queue.summary()
    for variant in queue.variants():
        if not only or variant.name in only:
            queue.run(variant)
            write_summary(queue, out)
    print(write_summary(queue, out))
    return queue.summary()


if __name__ == "__main__":
    main()
