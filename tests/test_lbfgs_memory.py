"""L-BFGS curvature memory: the compact product equals the two-loop recursion and keeps the
secant condition, with held coordinates and skipped pairs."""

from __future__ import annotations

import pytest
import torch

from lewm_mpc.planners.descent import CurvatureMemory


def two_loop(memory: CurvatureMemory, vector: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
    """Textbook two-loop recursion (Nocedal & Wright, Alg. 7.4), one problem at a time, over
    the pairs restricted to ``free`` whose restricted curvature is positive."""
    rows = []
    for p in range(vector.shape[0]):
        mask = free[p].double()
        pairs = [
            (memory.s[p, i].double() * mask, memory.y[p, i].double() * mask)
            for i in range(memory.s.shape[1])
            if memory.rho[p, i] > 0
        ]
        pairs = [(s, y) for s, y in pairs if float(s @ y) > 0]  # oldest first
        q = vector[p].double() * mask
        alphas = []
        for s, y in reversed(pairs):
            alpha = (s @ q) / (s @ y)
            q = q - alpha * y
            alphas.append(alpha)
        gamma = float(pairs[-1][0] @ pairs[-1][1] / (pairs[-1][1] @ pairs[-1][1])) if pairs else 1.0
        r = gamma * q
        for (s, y), alpha in zip(pairs, reversed(alphas), strict=True):
            r = r + (alpha - (y @ r) / (s @ y)) * s
        rows.append(r * mask)
    return torch.stack(rows).float()


def filled(problems: int, dim: int, size: int, pushes: int, seed: int) -> CurvatureMemory:
    """A memory fed ``pushes`` pairs of noisy quadratics, some rejected."""
    generator = torch.Generator().manual_seed(seed)
    memory = CurvatureMemory(problems, dim, size, torch.zeros(1))
    root = torch.randn(problems, dim, dim, generator=generator)
    hessian = root @ root.transpose(1, 2) + 0.1 * torch.eye(dim)
    for _ in range(pushes):
        s = torch.randn(problems, dim, generator=generator)
        y = (hessian @ s[..., None])[..., 0] + 0.3 * torch.randn(problems, dim, generator=generator)
        memory.push(s, y, torch.rand(problems, generator=generator) > 0.2)
    return memory


@pytest.mark.parametrize(
    ("problems", "dim", "size", "pushes"),
    [(1, 50, 30, 40), (4, 12, 5, 3), (3, 7, 10, 25), (2, 6, 4, 0)],
)
def test_apply_equals_the_two_loop_recursion(problems, dim, size, pushes):
    memory = filled(problems, dim, size, pushes, seed=problems * 100 + dim)
    generator = torch.Generator().manual_seed(1)
    vector = torch.randn(problems, dim, generator=generator)
    for free in (torch.ones(problems, dim, dtype=torch.bool),
                 torch.rand(problems, dim, generator=generator) > 0.3):  # fmt: skip
        got = memory.apply(vector, free)
        want = two_loop(memory, vector, free)
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-5 * float(want.abs().max()))
        assert bool((got[~free] == 0).all())


def test_apply_meets_the_secant_condition_of_the_newest_pair():
    memory = CurvatureMemory(1, 6, 4, torch.zeros(1))
    hessian = torch.diag(torch.tensor([1.0, 3.0, 10.0, 30.0, 100.0, 300.0]))
    generator = torch.Generator().manual_seed(0)
    for _ in range(4):
        s = torch.randn(1, 6, generator=generator)
        memory.push(s, s @ hessian, torch.tensor([True]))
    newest_s, newest_y = memory.s[:, -1], memory.y[:, -1]
    got = memory.apply(newest_y, torch.ones(1, 6, dtype=torch.bool))
    assert torch.allclose(got, newest_s, rtol=1e-4, atol=1e-5)


def test_empty_memory_is_the_identity_on_free_coordinates():
    memory = CurvatureMemory(2, 5, 3, torch.zeros(1))
    vector = torch.arange(10.0).reshape(2, 5)
    free = torch.tensor([[True, False, True, True, False]] * 2)
    assert torch.equal(memory.apply(vector, free), vector * free)
