"""Energies: task energies, action guardrails, probes, constraint heads, regions, composition."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import lewm_mpc as lm
from lewm_mpc.data import EpisodeDataset
from lewm_mpc.energies import ObjectiveValue
from lewm_mpc.models import CheckpointError


def identity_probe(size: int = 2, dtype: torch.dtype = torch.float32) -> lm.Probe:
    """The quantity is the latent itself (latents = positions)."""
    return lm.Probe([torch.eye(size, dtype=dtype)], [torch.zeros(size, dtype=dtype)])


def trajectory(*points, start=(9.0, 9.0)) -> torch.Tensor:
    """(1, H+1, 2) latents: ``start`` at step 0, then the given predicted points."""
    return torch.tensor([[start, *points]], dtype=torch.float64)


def score(energy, latents, actions=None, goal=None) -> torch.Tensor:
    actions = torch.zeros(latents.shape[0], latents.shape[1] - 1, 2) if actions is None else actions
    goal = torch.zeros(latents.shape[0], latents.shape[2]) if goal is None else goal
    return energy(latents, actions, goal)


# ------------------------------------------------------------------------ task energies
def test_goal_distance_default_is_terminal_plus_mean_running_distance():
    latents = torch.tensor([[[5.0, 5.0], [1.0, 0.0], [0.0, 2.0], [3.0, 0.0]]])  # d = 1, 4, 9
    assert score(lm.GoalDistance(), latents).item() == pytest.approx(9.0 + (1.0 + 4.0) / 2)
    assert score(lm.GoalDistance(running_weight=0.0), latents).item() == pytest.approx(9.0)


def test_weighted_goal_distance_weights_each_predicted_step():
    latents = torch.randn(4, 5, 3, generator=torch.Generator().manual_seed(0))
    goal = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    distance = (latents[:, 1:] - goal[:, None]).pow(2).sum(-1)  # (S, 4)
    weighted = lm.WeightedGoalDistance((0.0, 1.0, 2.0, 3.0))
    expected = distance @ torch.tensor([0.0, 1.0, 2.0, 3.0])
    assert torch.allclose(score(weighted, latents, goal=goal), expected)
    # GoalDistance(r) is the weights (r/(H-1), ..., r/(H-1), 1).
    same = lm.WeightedGoalDistance((0.5 / 3,) * 3 + (1.0,))
    assert torch.allclose(
        score(same, latents, goal=goal), score(lm.GoalDistance(0.5), latents, goal=goal)
    )
    with pytest.raises(ValueError, match="3 weights but the plan has horizon H=4"):
        score(lm.WeightedGoalDistance((1.0, 1.0, 1.0)), latents, goal=goal)


@pytest.mark.parametrize("weights", [(), (1.0, -1.0), (0.0, 0.0), (math.nan,)])
def test_weighted_goal_distance_rejects_bad_weights(weights):
    with pytest.raises(ValueError, match="weights"):
        lm.WeightedGoalDistance(weights)


# ---------------------------------------------------------------------- action guardrails
def test_action_guardrails_read_env_actions_across_blocks():
    # H=2 blocks of 2 env actions (A=2): a = (1,0), (1,0) | (0,2), (0,0).
    actions = torch.tensor([[[1.0, 0.0, 1.0, 0.0], [0.0, 2.0, 0.0, 0.0]]])
    latents = torch.zeros(1, 3, 2)
    assert score(lm.ActionMagnitude(2), latents, actions).item() == pytest.approx(6.0 / 4)
    # differences: (0,0), (-1,2) across the block boundary, (0,-2)
    assert score(lm.ActionSmoothness(2), latents, actions).item() == pytest.approx(9.0 / 3)
    single = torch.ones(3, 1, 2)  # one env action per plan: nothing to smooth
    assert torch.equal(score(lm.ActionSmoothness(2), torch.zeros(3, 2, 2), single), torch.zeros(3))
    with pytest.raises(ValueError, match=r"\(S, H, block\*3\)"):
        score(lm.ActionMagnitude(3), latents, actions)
    with pytest.raises(ValueError, match="action_dim"):
        lm.ActionSmoothness(0)


# ------------------------------------------------------------------------------- probes
def linear_data(num=500, dim=6, out=2, noise=0.01, seed=0):
    gen = torch.Generator().manual_seed(seed)
    weight, bias = torch.randn(dim, out, generator=gen), torch.randn(out, generator=gen)
    latents = torch.randn(num, dim, generator=gen)
    targets = latents @ weight + bias + noise * torch.randn(num, out, generator=gen)
    return latents, targets, weight, bias


def test_linear_probe_recovers_a_known_linear_map():
    latents, targets, weight, bias = linear_data()
    probe = lm.Probe.fit(latents, targets)
    assert probe.kind == "linear" and (probe.input_dim, probe.output_dim) == (6, 2)
    assert torch.allclose(probe.weights[0], weight, atol=0.01)
    assert torch.allclose(probe.biases[0], bias, atol=0.01)
    assert len(probe.r2) == 2 and min(probe.r2) > 0.99 and probe.r2_mean > 0.99
    assert (probe.num_train, probe.num_val) == (400, 100)
    # any leading shape; device and dtype follow the input
    batch = torch.randn(3, 4, 6, dtype=torch.float64)
    out = probe(batch)
    assert out.shape == (3, 4, 2) and out.dtype == torch.float64
    with pytest.raises(ValueError, match="D=6"):
        probe(torch.zeros(3, 5))


def test_mlp_probe_fits_a_nonlinear_map_better_than_a_linear_one():
    gen = torch.Generator().manual_seed(0)
    latents = torch.randn(400, 3, generator=gen)
    targets = torch.stack([torch.sin(2 * latents[:, 0]), latents[:, 1] ** 2], dim=1)  # (N, 2)
    linear = lm.Probe.fit(latents, targets, kind="linear")
    mlp = lm.Probe.fit(latents, targets, kind="mlp", steps=200)
    assert mlp.kind == "mlp" and mlp(latents).shape == (400, 2)
    assert linear.r2_mean < 0.3 and mlp.r2_mean > 0.9


def test_probe_fit_is_deterministic_and_holds_out_whole_groups():
    latents, targets, *_ = linear_data(num=100)
    first = lm.Probe.fit(latents, targets, kind="mlp", steps=20, seed=3)
    second = lm.Probe.fit(latents, targets, kind="mlp", steps=20, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(first.weights, second.weights, strict=True))
    grouped = lm.Probe.fit(latents, targets, val_fraction=0.25, groups=np.repeat(np.arange(4), 25))
    assert (grouped.num_train, grouped.num_val) == (75, 25)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(kind="tree"), "kind"),
        (dict(val_fraction=0.0), "val_fraction"),
        (dict(ridge=-1.0), "ridge"),
        (dict(groups=np.zeros(500)), "at least 2"),
    ],
)
def test_probe_fit_rejects_bad_options(kwargs, message):
    latents, targets, *_ = linear_data()
    with pytest.raises(ValueError, match=message):
        lm.Probe.fit(latents, targets, **kwargs)


def test_probe_fit_rejects_bad_data():
    with pytest.raises(ValueError, match=r"\(N, D\) and targets \(N, P\)"):
        lm.Probe.fit(torch.zeros(10, 3), torch.zeros(9, 2))
    with pytest.raises(ValueError, match="finite"):
        lm.Probe.fit(torch.full((10, 3), math.nan), torch.zeros(10, 2))


def test_probe_save_load_round_trip(tmp_path):
    latents, targets, *_ = linear_data(num=200)
    for kind in ("linear", "mlp"):
        probe = lm.Probe.fit(latents, targets, kind=kind, steps=20)
        loaded = lm.Probe.load(probe.save(tmp_path / kind))
        assert loaded.kind == kind and loaded.r2 == probe.r2
        assert (loaded.num_train, loaded.num_val) == (probe.num_train, probe.num_val)
        assert torch.equal(loaded(latents), probe(latents))
    assert not list(tmp_path.rglob("*.pkl")) and (tmp_path / "mlp" / "config.json").is_file()
    with pytest.raises(CheckpointError, match=r"not a 'lewm_mpc\.ConstraintHead'"):
        lm.ConstraintHead.load(tmp_path / "linear")
    (tmp_path / "linear" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="SHA-256"):
        lm.Probe.load(tmp_path / "linear")


def test_probe_first_used_in_inference_mode_still_backpropagates():
    probe = lm.Probe.fit(*linear_data(num=100)[:2], kind="mlp", steps=5)
    with torch.inference_mode():  # a sampling planner's first call caches the weights here
        probe(torch.zeros(2, 6))
    latents = torch.randn(2, 6, requires_grad=True)
    probe(latents).sum().backward()
    assert latents.grad is not None and torch.isfinite(latents.grad).all()
    with torch.inference_mode():  # fitting from inference tensors works too
        frozen = torch.randn(50, 6)
    assert lm.Probe.fit(frozen, frozen[:, :2], kind="mlp", steps=5).output_dim == 2


def test_fit_probe_from_dataset_encodes_frames_and_fits_states(tiny_dataset):
    from conftest import tiny_config

    dataset = EpisodeDataset.load(tiny_dataset)
    model = lm.WorldModel(tiny_config())  # untrained, left in train mode on purpose
    probe = lm.fit_probe_from_dataset(model, dataset, max_samples=200, batch_size=64)
    assert model.training  # restored
    assert (probe.input_dim, probe.output_dim) == (model.latent_dim, dataset.state_dim)
    assert len(probe.r2) == 2 and all(math.isfinite(r) for r in probe.r2)
    assert probe.num_train + probe.num_val == 200
    with torch.no_grad():
        latents = model.eval().encode(torch.from_numpy(dataset.pixels[:5].copy()))  # (5, D)
    assert probe(latents).shape == (5, 2)
    subset = lm.fit_probe_from_dataset(
        model, dataset, episode_ids=[0, 1, 2], target=lambda s: s[:, 0] + s[:, 1]
    )
    assert (
        subset.output_dim == 1
        and subset.num_train + subset.num_val == dataset.episode_lengths[:3].sum()
    )
    assert lm.fit_probe_from_dataset(model, dataset, target=[1], max_samples=50).output_dim == 1


# --------------------------------------------------------------------- constraint heads
def separable_points(num, seed, margin=0.0):
    """Points with |z0 + z1| >= margin in D=4; violating where z0 + z1 > 0."""
    gen = torch.Generator().manual_seed(seed)
    latents = torch.randn(4 * num, 4, generator=gen)
    rule = latents[:, 0] + latents[:, 1]
    latents = latents[rule.abs() >= margin][:num]
    return latents, latents[:, 0] + latents[:, 1] > 0


def test_constraint_head_separates_a_linear_rule_from_thirty_points(tmp_path):
    latents, labels = separable_points(30, seed=0)
    head = lm.ConstraintHead.fit(latents, labels)
    assert head.train_accuracy == 1.0 and head.num_train == 30
    test, unsafe = separable_points(200, seed=1, margin=1.5)
    # per-point violation: a one-step trajectory per point (step 0 is ignored)
    steps = torch.stack([torch.zeros_like(test), test], dim=1)  # (S, 2, D)
    violation = score(head, steps)
    assert violation[~unsafe].max() < 0.05 and violation[unsafe].min() > 1.0
    safe_probability = 1 - head.probability(test.double())  # -log P(safe)
    assert torch.allclose(violation.double(), -safe_probability.log(), rtol=1e-4, atol=1e-6)
    loaded = lm.ConstraintHead.load(head.save(tmp_path / "head"))
    assert torch.equal(score(loaded, steps), violation)
    assert loaded.reduce == "max" and loaded.train_accuracy == 1.0


def test_constraint_head_reductions_and_tolerance():
    head = lm.ConstraintHead(torch.tensor([1.0, 0.0]), 0.0, reduce="sum")
    latents = torch.tensor([[[50.0, 0.0], [0.0, 0.0], [math.log(3.0), 0.0]]])  # logits 0, log 3
    per_step = torch.tensor([math.log(2.0), math.log(4.0)])  # softplus = log(1 + e^logit)
    assert score(head, latents).item() == pytest.approx(per_step.sum().item())
    for reduce, expected in [("max", per_step.max()), ("mean", per_step.mean())]:
        head = lm.ConstraintHead(torch.tensor([1.0, 0.0]), 0.0, reduce=reduce)
        assert score(head, latents).item() == pytest.approx(expected.item())
    assert lm.ConstraintHead.tolerance(0.05) == pytest.approx(-math.log(0.95))
    guard = head.as_guardrail("zone", hard=True, risk=0.1)
    assert guard.hard and guard.tolerance == pytest.approx(-math.log(0.9))


@pytest.mark.parametrize(
    ("labels", "message"),
    [([True] * 4, "both"), ([1, 0, 1, 0], "booleans"), ([True, False], r"labels \(N,\)")],
)
def test_constraint_head_fit_rejects_bad_labels(labels, message):
    with pytest.raises(ValueError, match=message):
        lm.ConstraintHead.fit(torch.randn(4, 3), torch.tensor(labels))


# -------------------------------------------------------------------- region guardrails
def test_keep_out_box_sums_penetration_depth_over_every_predicted_step():
    box = lm.KeepOutBox(identity_probe(), low=(0.0, 0.0), high=(2.0, 1.0))
    inside = trajectory((1.0, 0.5), (0.1, 0.5), (3.0, 0.5), (0.0, 0.5), start=(1.0, 0.5))
    # depths 0.5 (centre), 0.1 (near the left face), 0 outside, 0 on the boundary; step 0 ignored
    assert score(box, inside).item() == pytest.approx(0.6)
    # a plan that enters and leaves again is penalized although its last step is outside
    assert score(box, trajectory((1.0, 0.5), (3.0, 3.0))).item() == pytest.approx(0.5)
    grown = lm.KeepOutBox(identity_probe(), low=(0.0, 0.0), high=(2.0, 1.0), margin=0.2)
    assert score(grown, inside).item() == pytest.approx(0.7 + 0.3 + 0.0 + 0.2)
    assert score(grown, trajectory((-0.1, 0.5), (2.3, 0.5))).item() == pytest.approx(0.1)


def test_keep_out_disc_and_stay_inside_box_exact_values():
    disc = lm.KeepOutDisc(identity_probe(), center=(0.0, 0.0), radius=1.0)
    points = trajectory((0.0, 0.0), (0.6, 0.8), (0.3, 0.4), (2.0, 0.0), start=(0.0, 0.0))
    assert score(disc, points).item() == pytest.approx(1.0 + 0.0 + 0.5 + 0.0)
    room = lm.StayInsideBox(identity_probe(), low=(0.0, 0.0), high=(1.0, 1.0))
    points = trajectory((0.5, 0.5), (1.0, 1.0), (2.0, 1.0), (-3.0, 5.0), (0.5, 0.5))
    assert score(room, points).item() == pytest.approx(0.0 + 0.0 + 1.0 + 5.0 + 0.0)


def test_region_guardrails_are_batched_and_follow_the_input_dtype():
    latents = torch.rand(7, 4, 2)  # float32
    for region in (
        lm.KeepOutBox(identity_probe(), (0.2, 0.2), (0.8, 0.8)),
        lm.KeepOutDisc(identity_probe(), (0.5, 0.5), 0.3),
        lm.StayInsideBox(identity_probe(), (0.1, 0.1), (0.9, 0.9)),
    ):
        value = score(region, latents)
        assert value.shape == (7,) and value.dtype == torch.float32 and (value >= 0).all()
        expected = torch.stack([score(region, latents[i : i + 1])[0] for i in range(7)])
        assert torch.allclose(value, expected)


def test_region_guardrails_are_differentiable_through_a_probe():
    gen = torch.Generator().manual_seed(0)
    probe = lm.Probe(
        [
            torch.randn(3, 8, generator=gen, dtype=torch.float64),
            torch.randn(8, 2, dtype=torch.float64, generator=gen),
        ],
        [torch.zeros(8, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)],
        activation="tanh",
    )
    latents = torch.randn(4, 5, 3, generator=gen, dtype=torch.float64)
    points = probe(latents[:, 1:]).detach().reshape(-1, 2)
    center = points.mean(0)
    low, high = points.quantile(0.25, dim=0), points.quantile(0.75, dim=0)  # not on a point
    regions = [
        lm.KeepOutBox(probe, low, high, margin=0.1),
        lm.KeepOutDisc(probe, center, radius=float(points.std(0).norm())),
        lm.StayInsideBox(probe, low, high),
    ]
    for region in regions:
        assert score(region, latents).sum() > 0  # some steps violate: gradients are not trivial
        latents.requires_grad_(True)
        assert torch.autograd.gradcheck(lambda z, r=region: score(r, z), (latents,))
        latents.requires_grad_(False)


def test_region_gradients_are_finite_at_kinks():
    # the disc centre and the inside of a StayInsideBox (zero-length vectors under a norm)
    latents = torch.tensor([[[9.0, 9.0], [0.5, 0.5]]], requires_grad=True)
    disc = lm.KeepOutDisc(identity_probe(), center=(0.5, 0.5), radius=1.0)
    room = lm.StayInsideBox(identity_probe(), low=(0.0, 0.0), high=(1.0, 1.0))
    for region in (disc, room):
        (grad,) = torch.autograd.grad(score(region, latents).sum(), latents)
        assert torch.isfinite(grad).all()


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda p: lm.KeepOutBox(p, (0.0, 1.0), (1.0, 1.0)), "low < high"),
        (lambda p: lm.KeepOutBox(p, (0.0, 0.0), (1.0, 1.0), margin=-0.1), "margin"),
        (lambda p: lm.KeepOutBox(p, (0.0,), (1.0,)), "outputs 2 values"),
        (lambda p: lm.KeepOutDisc(p, (0.0, 0.0), radius=0.0), "radius"),
        (lambda p: lm.KeepOutDisc(p, (0.0, 0.0, 0.0), radius=1.0), "outputs 2 values"),
        (lambda p: lm.StayInsideBox(p, (0.0, 0.0), (1.0,)), "low < high"),
        (lambda p: lm.StayInsideBox(p, (0.0, math.inf), (1.0, 1.0)), "finite"),
        (lambda p: lm.StayInsideBox("probe", (0.0, 0.0), (1.0, 1.0)), "callable"),
    ],
)
def test_region_guardrails_validate_arguments(build, message):
    with pytest.raises(ValueError, match=message):
        build(identity_probe())


def test_region_with_a_plain_callable_probe_checks_its_output_at_call_time():
    region = lm.KeepOutDisc(lambda z: z[..., :3], center=(0.0, 0.0), radius=1.0)
    with pytest.raises(ValueError, match=r"expected \(S, H, 2\)"):
        score(region, torch.zeros(2, 3, 4))


# ------------------------------------------------------------------------- composition
def test_objective_reports_every_term_and_only_hard_ones_make_violation():
    probe = identity_probe()
    guardrails = [
        lm.ActionMagnitude(2).as_guardrail("effort", weight=0.5),
        lm.KeepOutBox(probe, (0.0, 0.0), (2.0, 1.0)).as_guardrail("wall", weight=2.0, hard=True),
        lm.Guardrail(lm.StayInsideBox(probe, (0.0, 0.0), (1.0, 1.0)), "room", weight=3.0),
        lm.Guardrail(lm.KeepOutDisc(probe, (5.0, 5.0), 1.0), "pit", hard=True, tolerance=0.25),
    ]
    objective = lm.Objective(lm.GoalDistance(), guardrails)
    latents = torch.tensor(
        [
            [[0.0, 0.0], [1.0, 0.5], [1.5, 0.5]],  # inside the wall box, outside the room
            [[0.0, 0.0], [3.0, 3.0], [4.7, 5.0]],  # clear of the wall, 0.3 into the pit
        ]
    )
    actions = torch.tensor([[[1.0, 1.0], [0.0, 0.0]], [[0.0, 2.0], [0.0, 0.0]]])
    goal = torch.zeros(2, 2)
    value = objective(latents, actions, goal)
    assert isinstance(value, ObjectiveValue)
    assert (
        list(value.terms) == ["task", "effort", "wall", "room", "pit"] == list(objective.term_names)
    )
    terms = value.terms
    assert torch.allclose(terms["wall"], torch.tensor([0.5 + 0.5, 0.0]))
    assert torch.allclose(terms["room"], torch.tensor([0.5, math.sqrt(8) + math.hypot(3.7, 4.0)]))
    assert torch.allclose(terms["pit"], torch.tensor([0.0, 0.7]))
    weights = {"effort": 0.5, "wall": 2.0, "room": 3.0, "pit": 1.0}
    total = terms["task"] + sum(w * terms[name] for name, w in weights.items())
    assert torch.allclose(value.total, total)
    # violation: hard terms only, each beyond its tolerance (the soft "room" term does not count)
    assert torch.allclose(value.violation, torch.tensor([1.0, 0.7 - 0.25]))


class PointMass:
    """Latent = position in R^2; each step adds 0.1 * sum(block actions)."""

    latent_dim = action_dim = action_block = 2
    obs_shape = (2,)
    obs_dtype = torch.float32
    device = torch.device("cpu")
    action_low, action_high = torch.full((2,), -1.0), torch.full((2,), 1.0)

    def encode(self, obs):
        return obs.float()

    def rollout(self, z0, actions):
        steps = actions.view(*actions.shape[:2], 2, 2).sum(2) * 0.1  # (S, H, 2)
        return torch.cat([z0[:, None], z0[:, None] + steps.cumsum(1)], dim=1)


def test_guardrail_names_appear_in_plan_results():
    probe = identity_probe()
    planner = lm.CEM(
        PointMass(),
        horizon=3,
        num_samples=32,
        topk=4,
        iterations=3,
        guardrails=[
            lm.ActionSmoothness(2).as_guardrail("smooth", weight=0.1),
            lm.KeepOutDisc(probe, (0.25, 0.0), 0.1).as_guardrail("pit", hard=True),
        ],
    )
    result = planner.plan(np.zeros(2, np.float32), np.array([0.5, 0.0], np.float32))
    assert set(result.terms) == {"task", "smooth", "pit"}
    assert result.feasible == (result.terms["pit"] == 0.0)


def test_keep_out_substeps_catch_a_jump_over_the_box_between_predicted_steps():
    from lewm_mpc.energies import KeepOutBox

    identity = lambda z: z  # noqa: E731  (latents are positions here)
    # Start left of the box, one predicted step lands right of it: the segment crosses the box.
    latents = torch.tensor([[[0.0, 0.5], [1.0, 0.5]]])  # (S=1, H+1=2, D=2)
    actions, goal = torch.zeros(1, 1, 2), torch.zeros(1, 2)
    coarse = KeepOutBox(identity, (0.4, 0.4), (0.6, 0.6))
    fine = KeepOutBox(identity, (0.4, 0.4), (0.6, 0.6), substeps=4)
    assert coarse(latents, actions, goal).item() == 0.0  # only the endpoint is checked
    # Interpolated points at 0.25, 0.5, 0.75, 1.0: only x = 0.5 is inside, 0.1 deep.
    assert fine(latents, actions, goal).item() == pytest.approx(0.1)
    with pytest.raises(ValueError, match="substeps"):
        KeepOutBox(identity, (0.4, 0.4), (0.6, 0.6), substeps=0)


def test_probed_goal_distance_measures_through_the_probe():
    from lewm_mpc.energies import ProbedGoalDistance

    def probe(z):
        return 2.0 * z[..., :1]  # (..., 1): a quantity read from the latent

    latents = torch.tensor([[[0.0, 9.0], [0.5, 9.0], [1.0, 9.0]]])  # (1, H+1=3, D=2)
    goal = torch.tensor([[1.0, -9.0]])  # probed goal = 2.0
    actions = torch.zeros(1, 2, 2)
    # Steps 1, 2 probe to 1.0, 2.0: d = (1.0, 0.0); terminal 0 + running 0.5 * mean(1.0).
    energy = ProbedGoalDistance(probe, running_weight=0.5)(latents, actions, goal)
    assert energy.item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="running_weight"):
        ProbedGoalDistance(probe, running_weight=-1.0)


def test_energy_sum_weights_each_term_and_skips_zero_weights():
    from lewm_mpc.energies import ProbedGoalDistance

    latents = torch.randn(4, 4, 3, generator=torch.Generator().manual_seed(0))
    goal = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    latent, probed = lm.GoalDistance(), ProbedGoalDistance(lambda z: z[..., :1])
    total = score(lm.EnergySum((latent, probed), weights=(1.0, 5.0)), latents, goal=goal)
    expected = score(latent, latents, goal=goal) + 5.0 * score(probed, latents, goal=goal)
    assert torch.allclose(total, expected)
    assert torch.allclose(
        score(lm.EnergySum([latent, latent]), latents, goal=goal),
        2.0 * score(latent, latents, goal=goal),
    )

    def broken(latents, actions, goal):
        raise AssertionError("a term of weight 0 is not evaluated")

    alone = score(lm.EnergySum((latent, broken), weights=(1.0, 0.0)), latents, goal=goal)
    assert torch.equal(alone, score(latent, latents, goal=goal))


@pytest.mark.parametrize(
    ("terms", "weights", "match"),
    [
        ((), None, "one or more callable"),
        ((lm.GoalDistance(), "distance"), None, "one or more callable"),
        ((lm.GoalDistance(),), (1.0, 2.0), "1 terms, 2 weights"),
        ((lm.GoalDistance(),), (-1.0,), "finite, >= 0"),
        ((lm.GoalDistance(),), (math.inf,), "finite, >= 0"),
        ((lm.GoalDistance(), lm.GoalDistance()), (0.0, 0.0), "not all 0"),
    ],
)
def test_energy_sum_rejects_bad_terms_and_weights(terms, weights, match):
    with pytest.raises(ValueError, match=match):
        lm.EnergySum(terms, weights)
