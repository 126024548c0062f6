"""Exact states and supervised dynamics: how much of an env's gap is data, not pixels or JEPA?

A diagnosis one level below the world model. The latent is the true state's task features and
the state itself (``[spec.goal_features(state), state]``, exact: no encoder), the dynamics an
MLP regressed on the data's next latents one model step (``--block`` env actions) ahead (a
residual, in units of the data's spread), the energy the simulator oracle's (goal-feature
distance, ``ProbedGoalDistance`` over the feature part) and the planner CEM at the reference
budget (300 x 30, top 30, horizon 5, replanning every block). What it measures is how well
dynamics learned from the data alone, with perception and representation learning taken away,
let the planner reach the goals. The pairs are those of ``--data``'s held-out episodes (the
split a default training run makes, ``--eval-seed``), so a row compares with ``lewm-mpc eval
--model M --pairs P --eval-seed S`` of a pixel model trained on the same data.

``--extra-episodes 0,2000`` adds that many episodes of the data's own policy, collected here
without rendering (states only; collection seed ``--collect-seed``, episodes of the data's
length), one row each. Collected episodes and finished rows are kept under ``--work``, so a
rerun skips them.

    MUJOCO_GL=egl .venv/bin/python benchmarks/state_dynamics.py --data pusht-300.h5 \\
        --extra-episodes 0,2000

Writes ``benchmarks/results/state_dynamics_<env>[_<tag>].{json,md}``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import lewm_mpc as lm
from lewm_mpc.atomic import write_text_atomic
from lewm_mpc.data import EpisodeDataset
from lewm_mpc.data.rollout import episode_seed
from lewm_mpc.energies.task import ProbedGoalDistance
from lewm_mpc.envs import EnvSpec, get_env_spec
from lewm_mpc.evaluation import EvalConfig, run_pair, sample_pairs, wilson_interval
from lewm_mpc.models.simulator import StateObservation
from lewm_mpc.training import TrainConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _results.py beside this file
from _results import pair_seed, write_results


@dataclass(frozen=True)
class Args:
    data: Path = Path("pusht-300.h5")
    extra_episodes: str = "0,2000"  # comma-separated: one row each
    collect_seed: int = 7000
    augment: bool = False  # add every training trajectory under each of the env's symmetries
    block: int = 5  # env actions per model step
    hidden: int = 512
    train_steps: int = 40_000
    batch_size: int = 256
    lr: float = 1e-3
    pairs: int = 50
    eval_seed: int = 1
    samples: int = 300
    iterations: int = 30
    seed: int = 0
    threads: int = 1
    work: Path = Path("runs/state_dynamics")
    out: Path = Path("benchmarks/results")
    tag: str = ""


@dataclass(frozen=True)
class Trajectories:
    """Env-step trajectories: states (N, T + 1, Ds) and actions (N, T, A)."""

    states: np.ndarray
    actions: np.ndarray


def dataset_trajectories(dataset: EpisodeDataset, episodes: np.ndarray) -> list[Trajectories]:
    """The listed episodes of a dataset stored one env step per row (the last row has no
    action)."""
    if dataset.action_block != 1:
        raise ValueError(f"needs a dataset of one env step per row, got action_block "
                         f"{dataset.action_block}")  # fmt: skip
    out = []
    for episode in episodes:
        rows = dataset.episode_slice(int(episode))
        states, actions = dataset.state[rows], dataset.action[rows][:-1]
        out.append(Trajectories(states[None].astype(np.float64), actions[None]))
    return out


def symmetric_copies(spec: EnvSpec, parts: list[Trajectories]) -> list[Trajectories]:
    """The trajectories under each non-identity symmetry of the env's scene (states and
    actions transformed alike)."""
    symmetries = spec.definition.symmetries
    if symmetries is None:
        raise ValueError(f"{spec.name} declares no scene symmetries to augment with")
    return [Trajectories(symmetries.transform_state(part.states, element),
                         element.actions(part.actions))
            for element in symmetries.elements[1:] for part in parts]  # fmt: skip


def collect_states(spec: EnvSpec, dataset: EpisodeDataset, count: int, seed: int) -> Trajectories:
    """``count`` episodes of the dataset's policy and length, states only (no rendering)."""
    steps = dataset.episode_length(int(dataset.episode_ids[0])) - 1
    env = spec.make(obs_mode="state", env_config=dataset.meta.env_config)
    policy = spec.make_expert(env, dataset.meta.data_policy)
    states = np.zeros((count, steps + 1, dataset.state_dim))  # (N, T + 1, Ds)
    actions = np.zeros((count, steps, dataset.action_dim), np.float32)  # (N, T, A)
    for episode in range(count):
        env.reset(seed=episode_seed(seed, episode))
        policy.reset(np.random.default_rng([seed, episode]))
        state = env.unwrapped.get_state()
        states[episode, 0] = state
        for step in range(steps):
            action = np.asarray(policy.act(state), np.float32).reshape(-1)
            env.step(action)
            state = env.unwrapped.get_state()
            actions[episode, step], states[episode, step + 1] = action, state
    env.close()
    return Trajectories(states, actions)


def latent_of(spec: EnvSpec, states: np.ndarray) -> np.ndarray:
    """(..., Ds) states -> (..., F + Ds) latents: the task features, then the state."""
    states = np.asarray(states, np.float64)
    return np.concatenate([spec.goal_features(states), states], axis=-1)


def transitions(
    spec: EnvSpec, trajectories: list[Trajectories], block: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every (latent, next ``block`` actions, latent ``block`` env steps later)."""
    starts, actions, ends = [], [], []
    for part in trajectories:
        latents = latent_of(spec, part.states)  # (N, T + 1, L)
        steps = part.actions.shape[1]
        for t in range(steps - block + 1):
            starts.append(latents[:, t])
            actions.append(part.actions[:, t : t + block].reshape(len(latents), -1))
            ends.append(latents[:, t + block])
    return tuple(torch.tensor(np.concatenate(x), dtype=torch.float32)
                 for x in (starts, actions, ends))  # fmt: skip


class Dynamics(nn.Module):
    """latent (L,) + action block -> next latent, as a residual in units of the data's spread."""

    def __init__(self, starts: torch.Tensor, actions: torch.Tensor, ends: torch.Tensor,
                 hidden: int) -> None:  # fmt: skip
        super().__init__()
        dim = starts.shape[1]
        self.register_buffer("mean", starts.mean(0))
        self.register_buffer("std", starts.std(0).clamp_min(1e-6))
        self.register_buffer("step_mean", (ends - starts).mean(0))
        self.register_buffer("step_std", (ends - starts).std(0).clamp_min(1e-6))
        self.net = nn.Sequential(
            nn.Linear(dim + actions.shape[1], hidden), nn.GELU(),
            nn.Linear(hidden, hidden), nn.GELU(),
            nn.Linear(hidden, hidden), nn.GELU(),
            nn.Linear(hidden, dim),
        )  # fmt: skip

    def forward(self, latent: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        inputs = torch.cat([(latent - self.mean) / self.std, actions], dim=-1)
        return latent + self.net(inputs) * self.step_std + self.step_mean


class StateDynamicsModel:
    """A :class:`lm.LatentWorldModel` over exact latents: encode = the features and the state,
    rollout = the learned dynamics. Not differentiable (sampling planners only)."""

    differentiable = False

    def __init__(self, spec: EnvSpec, dynamics: Dynamics, block: int,
                 bounds: tuple[np.ndarray, np.ndarray], features: int) -> None:  # fmt: skip
        self.spec, self.dynamics, self.features_dim = spec, dynamics.eval(), features
        self.action_low, self.action_high = (torch.as_tensor(np.asarray(bound, np.float32))
                                             for bound in bounds)  # fmt: skip
        self.action_block, self.action_dim = block, int(self.action_low.shape[0])
        self.latent_dim = int(dynamics.mean.shape[0])
        self.device = torch.device("cpu")

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, Ds) states -> (B, L) latents."""
        return torch.tensor(latent_of(self.spec, obs.detach().cpu().numpy()), dtype=torch.float32)

    @torch.no_grad()
    def rollout(self, z0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """(S, L), (S, H, block * A) -> (S, H + 1, L)."""
        latents = [z0.float()]
        for step in range(actions.shape[1]):
            latents.append(self.dynamics(latents[-1], actions[:, step].float()))
        return torch.stack(latents, dim=1)

    def features(self, latents: torch.Tensor) -> torch.Tensor:
        """The task-feature part of latents."""
        return latents[..., : self.features_dim]


def train(data: tuple[torch.Tensor, ...], args: Args) -> tuple[Dynamics, float]:
    """Regress the next latents (normalized MSE); returns the model and its minutes."""
    starts, actions, ends = data
    dynamics = Dynamics(starts, actions, ends, args.hidden)
    optimizer = torch.optim.AdamW(dynamics.parameters(), args.lr, weight_decay=1e-5)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.train_steps)
    generator = torch.Generator().manual_seed(args.seed)
    started = time.perf_counter()
    for _ in range(args.train_steps):
        batch = torch.randint(0, len(starts), (args.batch_size,), generator=generator)
        error = (dynamics(starts[batch], actions[batch]) - ends[batch]) / dynamics.step_std
        loss = error.pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return dynamics, (time.perf_counter() - started) / 60


def held_out_error(dynamics: Dynamics, data: tuple[torch.Tensor, ...]) -> float:
    """Normalized MSE of one model step on held-out transitions (1: no better than the mean
    step)."""
    starts, actions, ends = data
    with torch.no_grad():
        error = (dynamics(starts, actions) - ends) / dynamics.step_std
    return float(error.pow(2).mean())


def run_row(spec: EnvSpec, dataset: EpisodeDataset, extra: int, args: Args) -> dict[str, Any]:
    """Train on the data's training episodes plus ``extra`` collected ones; plan the pairs."""
    defaults = TrainConfig()
    train_ids, val_ids = dataset.split(defaults.val_fraction, defaults.seed)
    parts = dataset_trajectories(dataset, train_ids)
    if extra:
        cache = args.work / f"{spec.name}_{extra}ep_seed{args.collect_seed}.npz"
        if not cache.exists():
            collected = collect_states(spec, dataset, extra, args.collect_seed)
            cache.parent.mkdir(parents=True, exist_ok=True)
            partial = cache.with_suffix(".partial.npz")
            np.savez(partial, states=collected.states, actions=collected.actions)
            partial.replace(cache)  # atomic: a kill never leaves a half-written cache
        saved = np.load(cache)
        parts.append(Trajectories(saved["states"], saved["actions"]))
    if args.augment:
        parts += symmetric_copies(spec, parts)
    torch.manual_seed(args.seed)
    data = transitions(spec, parts, args.block)
    dynamics, minutes = train(data, args)
    held_out = transitions(spec, dataset_trajectories(dataset, val_ids), args.block)
    features = int(spec.goal_features(dataset.state[:1]).shape[-1])
    bounds = (dataset.meta.action_low, dataset.meta.action_high)
    model = StateDynamicsModel(spec, dynamics, args.block, bounds, features)
    config = EvalConfig(num_pairs=args.pairs, seed=args.eval_seed)
    pairs, _ = sample_pairs(dataset, val_ids, spec, config)
    state_env = spec.make_for_budget(config.budget, "state", dataset.meta.env_config)
    state_env.reset(seed=0)  # get_state needs a started episode
    env = StateObservation(state_env)
    planner = lm.CEM(model, energy=ProbedGoalDistance(model.features, 1.0), horizon=5,
                     num_samples=args.samples, iterations=args.iterations,
                     topk=min(30, args.samples),
                     polish_steps=0, seed=args.seed)  # fmt: skip
    solved = []
    for index, pair in enumerate(pairs):
        planner.reset(seed=pair_seed(args.seed, index))
        solved.append(bool(run_pair(env, planner, pair, config).succeeded))
    env.close()
    wins = sum(solved)
    return {"extra_episodes": extra, "train_episodes": len(train_ids) + extra,
            "augmented": args.augment,
            "transitions": len(data[0]), "train_minutes": minutes,
            "held_out_step_error": held_out_error(dynamics, held_out), "pairs": len(pairs),
            "successes": wins, "success_rate": wins / len(pairs),
            "ci95": wilson_interval(wins, len(pairs)), "solved": solved}  # fmt: skip


def markdown(result: dict[str, Any]) -> str:
    args = result["args"]
    lines = [
        f"{result['env']}: exact states, dynamics regressed on the data "
        f"({args['block']} env steps per model step, MLP {args['hidden']} x 3, "
        f"{args['train_steps']} steps of {args['batch_size']}), the oracle's energy, CEM "
        f"{args['samples']} x {args['iterations']} (top {min(30, int(args['samples']))}, "
        "horizon 5, replanning every block); "
        f"pairs from `{args['data']}`'s held-out episodes, seed {args['eval_seed']}.",
        "",
        "| training episodes | transitions | held-out one-step error (normalized) | training | "
        "success (95% CI) |",
        "|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        low, high = row["ci95"]
        lines.append(
            f"| {row['train_episodes']} (+{row['extra_episodes']} collected"
            f"{'; x8 by symmetry' if row.get('augmented') else ''}) | "
            f"{row['transitions']:,} | {row['held_out_step_error']:.4f} | "
            f"{row['train_minutes']:.1f} min | {100 * row['success_rate']:.0f}% "
            f"({100 * low:.0f}-{100 * high:.0f}), n={row['pairs']} |"
        )
    return "\n".join(lines) + "\n"


def main(args: Args) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    dataset = EpisodeDataset.load(args.data)
    spec = get_env_spec(dataset.meta.env_id)
    name = f"state_dynamics_{spec.name}{'_' + args.tag if args.tag else ''}"
    rows = []
    for extra in (int(count) for count in args.extra_episodes.split(",")):
        done = args.work / f"{name}_{extra}.json"
        if done.exists():
            rows.append(json.loads(done.read_text()))
            continue
        row = run_row(spec, dataset, extra, args)
        done.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(done, json.dumps(row))
        rows.append(row)
    return write_results(args.out, name, args, rows, markdown, env=spec.name)


if __name__ == "__main__":
    from _cli import parse_args  # beside this script

    main(parse_args(Args, __doc__))
