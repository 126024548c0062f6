"""Every bad input is a clear error: one table over the public API and the CLI.

Each row is (description, what to run, expected exception, a substring of its message). Python
rows call a function; CLI rows run ``lewm-mpc`` in-process and must exit nonzero with at most 3
lines of error output, no traceback, naming the problem. Rows are grouped by class of input
(bounds, protocol models, energies, observations, loading, CLI counts), so a new planner,
subcommand or count flag is covered by adding it to the lists the rows are built from.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import lewm_mpc as lm
from conftest import tiny_config
from lewm_mpc import cli
from lewm_mpc.data import DatasetMeta
from lewm_mpc.validation import check_action_bounds
from test_lerobot_import import import_broken

NAN, INF = float("nan"), float("inf")
TESTS = Path(__file__).resolve().parent
PLANNERS: dict[str, Callable[..., lm.Planner]] = {
    "CEM": functools.partial(lm.CEM, num_samples=4, topk=2, iterations=1),
    "MPPI": functools.partial(lm.MPPI, num_samples=4, iterations=1),
    "Gradient": functools.partial(lm.GradientPlanner, restarts=2, iterations=2),
    "Hybrid": functools.partial(
        lm.GradientPlanner.hybrid, restarts=2, iterations=2, cem_iterations=1, cem_samples=4,
        cem_topk=2,
    ),
}  # fmt: skip
Z0, GOAL = np.zeros(2, np.float32), np.full(2, 0.5, np.float32)


# ------------------------------------------------------------------ tiny protocol models
class ToyModel:
    """A 2-D protocol model (latent = observation, each model step adds the block's actions);
    the broken variants below each get one member wrong."""

    latent_dim = 2
    action_dim = 2
    action_block = 2
    obs_shape = (2,)
    obs_dtype = torch.float32
    device = torch.device("cpu")

    def __init__(self, low: Any = (-1.0, -1.0), high: Any = (1.0, 1.0)) -> None:
        self.action_low = low if isinstance(low, list | np.ndarray) else torch.tensor(low)
        self.action_high = high if isinstance(high, list | np.ndarray) else torch.tensor(high)

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.float()

    def rollout(self, z0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        steps = actions.view(*actions.shape[:2], self.action_block, 2).sum(2)  # (S, H, 2)
        return torch.cat([z0[:, None], z0[:, None] + 0.1 * steps.cumsum(1)], dim=1)


class RolloutWithoutStart(ToyModel):
    def rollout(self, z0, actions):
        return super().rollout(z0, actions)[:, 1:]  # (S, H, D): z0 left out


class RolloutWrongDim(ToyModel):
    def rollout(self, z0, actions):
        return super().rollout(z0, actions).repeat(1, 1, 2)  # (S, H+1, 2D)


class NumpyRollout(ToyModel):
    def rollout(self, z0, actions):
        return super().rollout(z0, actions).detach().numpy()


class NoGradRollout(ToyModel):
    def rollout(self, z0, actions):
        with torch.no_grad():
            return super().rollout(z0, actions)


class DetachedRollout(torch.nn.Module, ToyModel):
    """Gradients reach its parameter but not the actions: the output still requires grad."""

    def __init__(self) -> None:
        torch.nn.Module.__init__(self)
        ToyModel.__init__(self)
        self.offset = torch.nn.Parameter(torch.zeros(2))

    def rollout(self, z0, actions):
        return ToyModel.rollout(self, z0, actions.detach()) + self.offset


class EncodeWrongDim(ToyModel):
    def encode(self, obs):
        return torch.cat([obs, obs], dim=1).float()  # (B, 2D)


class NumpyEncode(ToyModel):
    def encode(self, obs):
        return obs.numpy()


class ZeroLatentDim(ToyModel):
    latent_dim = 0


class NoRollout:
    latent_dim, action_dim, action_block, device = 2, 2, 1, torch.device("cpu")
    action_low, action_high = torch.full((2,), -1.0), torch.full((2,), 1.0)

    def encode(self, obs):
        return obs.float()


def column_energy(latents, actions, goal):  # (S, 1): one column too many
    return (latents[:, -1] - goal).pow(2).sum(-1, keepdim=True)


def numpy_energy(latents, actions, goal):
    return (latents[:, -1] - goal).pow(2).sum(-1).detach().numpy()


@functools.cache
def pixel_model() -> lm.WorldModel:
    """A random tiny pixel world model (64x64x3 uint8 observations)."""
    torch.manual_seed(0)
    return lm.WorldModel(tiny_config()).eval()


def plan(make: Callable[..., lm.Planner], model: Any, obs=Z0, goal=GOAL, **kwargs) -> Any:
    return make(model, horizon=2, **kwargs).plan(obs, goal)


def planner_rows() -> list[tuple[str, Callable[[], Any], type, str]]:
    """Rows every planner must pass: the checks live in the shared base, not in each planner."""
    rows = []
    for name, make in PLANNERS.items():
        rows += [
            (f"{name}: action_low NaN", lambda m=make: m(ToyModel(low=(NAN, -1.0))),
             ValueError, "action_low must be finite"),
            (f"{name}: action_high inf", lambda m=make: m(ToyModel(high=(1.0, INF))),
             ValueError, "action_high must be finite"),
            (f"{name}: action_low > action_high", lambda m=make: m(ToyModel(low=(2.0, -1.0))),
             ValueError, "not so in dimensions [0]"),
            (f"{name}: per-block bounds (block*A)",
             lambda m=make: m(ToyModel(low=(-1.0,) * 4, high=(1.0,) * 4)),
             ValueError, "action_dim=2 entries"),
            (f"{name}: rollout (S, H, D)", lambda m=make: plan(m, RolloutWithoutStart()),
             ValueError, "RolloutWithoutStart.rollout returned a torch.float32 tensor of shape"),
            (f"{name}: rollout numpy", lambda m=make: plan(m, NumpyRollout()),
             ValueError, "NumpyRollout.rollout returned a ndarray; expected a floating "
             "torch.Tensor of shape (S, H+1, latent_dim)"),
            (f"{name}: guardrail (S, 1)",
             lambda m=make: plan(m, ToyModel(), guardrails=[lm.Guardrail(column_energy, "col")]),
             ValueError, "guardrail 'col' returned shape"),
        ]  # fmt: skip
    return rows


def keepout_box() -> lm.KeepOutBox:
    return lm.KeepOutBox(lambda z: z, (0.3, 0.3), (0.4, 0.4))


API_ROWS: list[tuple[str, Callable[[], Any], type, str]] = [
    # action bounds, in a config
    ("config: action_low NaN", lambda: lm.WorldModelConfig(action_low=(NAN, -1.0)),
     ValueError, "WorldModelConfig: action_low must be finite"),
    ("config: action_high inf", lambda: lm.WorldModelConfig(action_high=np.array([1.0, INF])),
     ValueError, "action_high must be finite"),
    ("config: low > high", lambda: lm.WorldModelConfig(action_low=[-1.0, 3.0]),
     ValueError, "need action_low < action_high in every dimension"),
    ("config: low == high", lambda: lm.WorldModelConfig(action_low=(1.0, -1.0)),
     ValueError, "not so in dimensions [0]"),
    ("config: wrong length", lambda: lm.WorldModelConfig(action_low=(-1.0, -1.0, -1.0)),
     ValueError, "action_dim=2 entries"),
    ("config: 2-D bounds", lambda: lm.WorldModelConfig(action_low=[[-1.0, -1.0]]),
     ValueError, "action_low must have one entry per action dimension"),
    ("config: not numbers", lambda: lm.WorldModelConfig(action_high=("a", "b")),
     ValueError, "action_high must be a sequence of numbers"),
    ("bounds: beyond float32", lambda: check_action_bounds([-1e39], [1.0]),
     ValueError, "action_low must be finite"),
    ("dataset meta: low > high",
     lambda: DatasetMeta(action_low=(1.0,), action_high=(0.0,)),
     ValueError, "need action_low < action_high"),
    # protocol models: static members
    ("model: rollout missing", lambda: lm.CEM(NoRollout()),
     ValueError, "does not satisfy the LatentWorldModel protocol: missing ['rollout']"),
    ("model: latent_dim 0", lambda: lm.CEM(ZeroLatentDim()),
     ValueError, "ZeroLatentDim.latent_dim must be an int >= 1"),
    # protocol models: outputs, checked on the first plan
    ("model: rollout wrong latent size", lambda: plan(PLANNERS["CEM"], RolloutWrongDim()),
     ValueError, "expected a floating torch.Tensor of shape (S, H+1, latent_dim) = (4, 3, 2)"),
    ("model: encode wrong latent size", lambda: plan(PLANNERS["MPPI"], EncodeWrongDim()),
     ValueError, "EncodeWrongDim.encode returned a torch.float32 tensor of shape (2, 4)"),
    ("model: encode numpy", lambda: plan(PLANNERS["CEM"], NumpyEncode()),
     ValueError, "NumpyEncode.encode returned a ndarray"),
    ("gradient: rollout under no_grad", lambda: plan(PLANNERS["Gradient"], NoGradRollout()),
     ValueError, "NoGradRollout.rollout does not pass gradients"),
    ("gradient: rollout under no_grad, action guardrail",
     lambda: plan(PLANNERS["Gradient"], NoGradRollout(),
                  guardrails=[lm.Guardrail(lm.ActionMagnitude(2), "magnitude")]),
     ValueError, "needs a world model differentiable in the actions"),
    ("gradient: actions detached, parameters not", lambda: plan(PLANNERS["Gradient"],
                                                                DetachedRollout()),
     ValueError, "DetachedRollout.rollout does not pass gradients"),
    ("hybrid: rollout under no_grad", lambda: plan(PLANNERS["Hybrid"], NoGradRollout()),
     ValueError, "does not pass gradients"),
    ("gradient: oracle (differentiable=False)",
     lambda: lm.GradientPlanner(type("Oracle", (ToyModel,), {"differentiable": False})()),
     ValueError, "is not differentiable"),
    # energies and guardrails
    ("task energy (S, 1)", lambda: plan(PLANNERS["CEM"], ToyModel(), energy=column_energy),
     ValueError, "task energy 'column_energy' returned shape (4, 1), expected (4,)"),
    ("task energy numpy", lambda: plan(PLANNERS["MPPI"], ToyModel(), energy=numpy_energy),
     ValueError, "task energy 'numpy_energy' returned a ndarray"),
    ("guardrail numpy", lambda: plan(PLANNERS["Gradient"], ToyModel(),
                                     guardrails=[lm.Guardrail(numpy_energy, "np")]),
     ValueError, "guardrail 'np' returned a ndarray"),
    ("region without Guardrail", lambda: lm.CEM(ToyModel(), guardrails=[keepout_box()]),
     ValueError, "wrap it in lm.Guardrail(KeepOutBox(...)"),
    ("one Guardrail, not a list",
     lambda: lm.MPPI(ToyModel(), guardrails=lm.Guardrail(keepout_box(), "keepout")),
     ValueError, "pass guardrails=[...]"),
    # observations and goals
    ("plan: obs of wrong shape", lambda: plan(PLANNERS["CEM"], ToyModel(), obs=np.zeros(3)),
     ValueError, "obs has shape (3,); expected (2,)"),
    ("plan: goal of wrong shape", lambda: plan(PLANNERS["CEM"], ToyModel(), goal=np.zeros(3)),
     ValueError, "goal has shape (3,); expected (2,)"),
    ("plan: batched obs, single goal",
     lambda: plan(PLANNERS["CEM"], ToyModel(), obs=np.zeros((3, 2), np.float32)),
     ValueError, "goal must have the same shape as obs"),
    ("plan: NaN obs", lambda: plan(PLANNERS["CEM"], ToyModel(), obs=np.full(2, NAN)),
     ValueError, "obs contains NaN or inf"),
    ("plan: pixels of wrong size",
     lambda: plan(PLANNERS["CEM"], pixel_model(), obs=np.zeros((32, 32, 3), np.uint8),
                  goal=np.zeros((32, 32, 3), np.uint8)),
     ValueError, "obs has shape (32, 32, 3); expected (64, 64, 3)"),
    ("plan: float pixels",
     lambda: plan(PLANNERS["CEM"], pixel_model(), obs=np.zeros((64, 64, 3), np.float32),
                  goal=np.zeros((64, 64, 3), np.float32)),
     ValueError, "expected uint8 pixels"),
    ("plan: deadline 0", lambda: lm.CEM(ToyModel()).plan(Z0, GOAL, deadline_s=0),
     ValueError, "deadline_s must be > 0"),
    ("warm_up: zero plans", lambda: lm.CEM(ToyModel()).warm_up(Z0, GOAL, plans=0),
     ValueError, "plans must be an int >= 1"),
    # loading
    ("load: missing path", lambda: lm.WorldModel.load("/no/such/model"),
     lm.CheckpointError, "does not exist"),
    ("load: unknown shipped model", lambda: lm.WorldModel.load("pretrained:nosuchenv"),
     ValueError, "unknown pretrained model"),
    ("load: CUDA unavailable", lambda: lm.WorldModel.load("pretrained:tworoom", device="cuda"),
     ValueError, "device 'cuda' requested but CUDA is not available"),
    ("load: unknown device", lambda: lm.WorldModel.load("pretrained:tworoom", device="gpu"),
     ValueError, "unknown device 'gpu'"),
    # LeRobot import (copies of tests/data/lerobot_v30 with one fault each)
    ("lerobot: not a LeRobot folder", lambda: import_broken("video", None),
     ValueError, "is not a LeRobot dataset: no meta/info.json"),
    ("lerobot: unknown version", lambda: import_broken("video", "version"),
     ValueError, "codebase_version 'v1.6' is not supported (expected one of ['v2.0', 'v2.1'"),
    ("lerobot: no action feature", lambda: import_broken("image", "no_action"),
     ValueError, "no feature 'action' for the action; its numeric features are"),
    ("lerobot: NaN action", lambda: import_broken("image", "nan_action"),
     ValueError, "file-000.parquet: 'action' of episode 0, frame 3 is not finite"),
    ("lerobot: lengths disagree", lambda: import_broken("video", "length"),
     ValueError, "episode 1 has 9 rows, but meta/episodes/ says its length is 10"),
    ("lerobot: video file missing", lambda: import_broken("video", "no_video"),
     ValueError, "file-000.mp4: video file not found"),
    ("lerobot: two cameras, none chosen", lambda: import_broken("video", "two_cameras"),
     ValueError, "it has cameras ['observation.image', 'observation.images.wrist']; choose one"),
    *planner_rows(),
]  # fmt: skip


@pytest.fixture(autouse=True)
def no_cuda(monkeypatch):
    """Rows about an unavailable device behave the same on a GPU machine."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [row[1:] for row in API_ROWS],
    ids=[row[0] for row in API_ROWS],
)
def test_api_bad_input_is_a_clear_error(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert message in str(info.value)


# ------------------------------------------------------------------------------ the CLI
@dataclass(frozen=True)
class Subcommand:
    """A subcommand, the arguments it requires, and its flags by kind of value."""

    argv: tuple[str, ...]
    counts: tuple[str, ...]
    seeds: tuple[str, ...] = ()
    positive_floats: tuple[str, ...] = ()


PLANNER_COUNTS = ("--horizon", "--samples", "--iterations", "--topk", "--receding")
EVAL_COUNTS = ("--pairs", "--goal-offset", "--budget")
SUBCOMMANDS = {
    "collect": Subcommand(
        ("collect", "tworoom", "--out", "unused.h5"),
        ("--episodes", "--steps", "--workers", "--action-block", "--image-size"),
        ("--seed",),
    ),
    "train": Subcommand(
        ("train", "--data", "unused.h5", "--out", "unused"),
        ("--steps", "--batch-size"),
        ("--seed",),
        ("--lr",),
    ),
    "eval": Subcommand(
        ("eval", "--model", "unused"),
        ("--offline-horizon", *EVAL_COUNTS, *PLANNER_COUNTS),
        ("--eval-seed", "--planner-seed"),
        ("--deadline",),
    ),
    "demo": Subcommand(
        ("demo",),
        ("--episodes", "--steps", "--batch-size", *EVAL_COUNTS, *PLANNER_COUNTS),
        ("--seed", "--eval-seed", "--planner-seed"),
        ("--lr", "--deadline"),
    ),
    "render": Subcommand(
        ("render",),
        ("--steps", "--goal-offset", "--scale", "--fps", "--probe-samples"),
        ("--pair", "--seed"),
        ("--box-half",),
    ),
    "import": Subcommand(
        ("import", "lerobot", "unused", "--out", "unused.h5"), ("--frameskip", "--image-size")
    ),
    "bench": Subcommand(
        ("bench",),
        (
            "--pairs",
            "--budget",
            "--samples",
            "--restarts",
            "--horizon",
            "--receding",
            "--time-budget",
            "--goal-offset",
            "--episode-steps",
            "--workers",
            "--threads",
        ),
        (),
        ("--deadline",),
    ),
}


def cli_rows() -> list[tuple[str, tuple[str, ...], str]]:
    """Every count flag of every subcommand at 0 and below, seeds below 0, durations at 0."""
    rows = []
    for name, sub in SUBCOMMANDS.items():
        for flag in sub.counts:
            for value in ("0", "-2"):
                rows.append((f"{name} {flag} {value}", (*sub.argv, flag, value),
                             f"argument {flag}: must be >= 1, got {int(value)}"))  # fmt: skip
        for flag in sub.seeds:
            rows.append((f"{name} {flag} -1", (*sub.argv, flag, "-1"),
                         f"argument {flag}: must be >= 0, got -1"))  # fmt: skip
        for flag in sub.positive_floats:
            rows.append((f"{name} {flag} 0", (*sub.argv, flag, "0"),
                         f"argument {flag}: must be a finite number > 0"))  # fmt: skip
    return rows


USAGE_ROWS = [
    *cli_rows(),
    ("collect --steps x", ("collect", "tworoom", "--out", "u.h5", "--steps", "x"),
     "expected a whole number >= 1, got 'x'"),
    ("collect --env-option =3", ("collect", "tworoom", "--out", "u.h5", "--env-option", "=3"),
     "expected KEY=VALUE (e.g. mesh_cell=0.005), got '=3'"),
    ("eval --deadline nan", ("eval", "--model", "unused", "--deadline", "nan"),
     "must be a finite number > 0"),
    ("import --episodes x", ("import", "lerobot", "u", "--out", "u.h5", "--episodes", "1,x"),
     "expected comma-separated episode indices, got '1,x'"),
    ("import --tolerance-s -1", ("import", "lerobot", "u", "--out", "u.h5", "--tolerance-s", "-1"),
     "argument --tolerance-s: must be a finite number >= 0"),
    ("import: unknown format", ("import", "lerobot2", "u", "--out", "u.h5"),
     "invalid choice: 'lerobot2'"),
]  # fmt: skip
RUN_ROWS = [
    ("eval: missing model", ("eval", "--model", "/no/such/model", "--device", "cpu"),
     "does not exist"),
    ("eval: unknown shipped model", ("eval", "--model", "pretrained:nosuchenv"),
     "unknown pretrained model"),
    ("eval: CUDA unavailable", ("eval", "--model", "pretrained:tworoom", "--device", "cuda"),
     "device 'cuda' requested but CUDA is not available"),
    ("eval: unknown device", ("eval", "--model", "pretrained:tworoom", "--device", "gpu"),
     "unknown device 'gpu'"),
    ("collect: unknown env option",
     ("collect", "tworoom", "--out", str(TESTS / "never-written.h5"), "--env-option", "colour=3"),
     "invalid tworoom env_config {'colour': 3}"),
    ("import lerobot: not a LeRobot folder",
     ("import", "lerobot", str(TESTS), "--out", str(TESTS / "never-written.h5")),
     "is not a LeRobot dataset: no meta/info.json"),
]  # fmt: skip


def run_cli(argv, capsys) -> tuple[int, str]:
    """``lewm-mpc ARGV`` as the console script runs it: exit status and all output."""
    with pytest.raises(SystemExit) as info:
        sys.exit(cli.main(list(argv)))
    captured = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), captured.err + captured.out


def assert_clear_cli_error(code: int, output: str, message: str) -> None:
    assert code != 0
    assert "Traceback" not in output
    assert len(output.strip().splitlines()) <= 3, output
    assert message in output, output


@pytest.mark.parametrize(
    ("argv", "message"), [row[1:] for row in USAGE_ROWS], ids=[row[0] for row in USAGE_ROWS]
)
def test_cli_bad_flag_is_a_usage_error(argv, message, capsys, monkeypatch):
    def must_not_run(args):
        raise AssertionError(f"{args.command} ran with a bad flag")

    monkeypatch.setattr(cli, "COMMANDS", dict.fromkeys(cli.COMMANDS, must_not_run))
    code, output = run_cli(argv, capsys)
    assert code == 2
    assert_clear_cli_error(code, output, message)
    assert output.startswith(f"lewm-mpc {argv[0]}: error:")


@pytest.mark.parametrize(
    ("argv", "message"), [row[1:] for row in RUN_ROWS], ids=[row[0] for row in RUN_ROWS]
)
def test_cli_bad_input_is_one_line(argv, message, capsys):
    code, output = run_cli(argv, capsys)
    assert_clear_cli_error(code, output, message)


# ------------------------------------------------------------- what must keep working
@pytest.mark.parametrize(
    "bounds",
    [((-1, -1), (1, 1)), ([-1.0, -1.0], [1.0, 1.0]), (np.array([-1.0, -1.0]), np.ones(2)),
     (torch.tensor([-1.0, -1.0]), torch.ones(2))],
    ids=["int tuple", "list", "numpy", "tensor"],
)  # fmt: skip
def test_bounds_of_any_sequence_type_are_accepted_and_converted(bounds):
    config = lm.WorldModelConfig(action_low=bounds[0], action_high=bounds[1])
    assert config.action_low == (-1.0, -1.0) and config.action_high == (1.0, 1.0)
    assert all(type(value) is float for value in (*config.action_low, *config.action_high))
    assert lm.WorldModelConfig.from_dict(config.to_dict()) == config
    model = ToyModel(low=list(bounds[0]), high=np.asarray(bounds[1], dtype=np.float64))
    result = lm.CEM(model, horizon=2, num_samples=8, topk=2, iterations=2).plan(Z0, GOAL)
    assert result.actions.min() >= -1.0 and result.actions.max() <= 1.0


@pytest.mark.parametrize("name", list(PLANNERS))
def test_model_outputs_are_checked_once_per_planner(name, monkeypatch):
    import lewm_mpc.planners.scoring as scoring  # where the planners' rollout check is looked up

    calls = []
    check = scoring.check_rollout_output

    def counted(*args, **kwargs):
        calls.append(1)
        check(*args, **kwargs)

    monkeypatch.setattr(scoring, "check_rollout_output", counted)
    planner = PLANNERS[name](ToyModel(), horizon=2)
    planner.plan(Z0, GOAL)
    planner.plan(Z0, GOAL)
    # Once per planner; the hybrid's CEM warm-up is a planner of its own per plan, and the
    # L-BFGS polish of CEM and MPPI one of its own, made once.
    assert len(calls) == {"Hybrid": 3, "CEM": 2, "MPPI": 2}.get(name, 1)


def test_load_accepts_auto_device():
    model = lm.WorldModel.load("pretrained:tworoom", device="auto")  # CUDA patched away
    assert model.device == torch.device("cpu")
