"""SIGReg: near its Gaussian floor on N(0, I), large on collapse, and its gradient Gaussianizes."""

from __future__ import annotations

import pytest
import torch

from lewm_mpc.models.sigreg import SIGRegConfig, gaussian_expectation, sigreg


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_gaussian_samples_sit_at_the_noise_floor():
    z = torch.randn(1024, 32, generator=_gen(1))
    value = sigreg(z, generator=_gen(2)).item()
    floor = gaussian_expectation()
    assert 0.5 * floor < value < 1.5 * floor
    assert floor == pytest.approx(1.06, abs=0.05)  # sqrt(2 pi) - sqrt(2 pi / 3)


@pytest.mark.parametrize(
    "make",
    [
        lambda g: torch.zeros(1024, 32),  # full collapse
        lambda g: torch.randn(1024, 2, generator=g) @ torch.randn(2, 32, generator=g),  # rank 2
        lambda g: 0.1 * torch.randn(1024, 32, generator=g),  # shrunk
        lambda g: torch.randn(1024, 32, generator=g) + 3.0,  # shifted
    ],
    ids=["collapsed", "low-rank", "shrunk", "shifted"],
)
def test_non_gaussian_embeddings_score_far_higher(make):
    z = make(_gen(3))
    assert sigreg(z, generator=_gen(4)).item() > 20 * gaussian_expectation()


def test_statistic_is_averaged_over_time_groups():
    z = torch.randn(3, 256, 8, generator=_gen(5))
    directions = torch.nn.functional.normalize(torch.randn(8, 64, generator=_gen(6)), dim=0)
    per_group = [sigreg(z[t], directions=directions) for t in range(3)]
    assert sigreg(z, directions=directions).item() == pytest.approx(
        torch.stack(per_group).mean().item(), rel=1e-5
    )


def test_gradient_steps_move_samples_toward_isotropic_gaussian():
    gen = _gen(7)
    z = (torch.randn(512, 8, generator=gen) * torch.tensor([3.0, 0.2] * 4) + 1.0).requires_grad_()
    optimizer = torch.optim.Adam([z], lr=0.05)
    config = SIGRegConfig(num_projections=256)
    before = sigreg(z.detach(), config, _gen(8)).item()
    for _ in range(300):
        optimizer.zero_grad()
        sigreg(z, config, gen).backward()
        optimizer.step()
    after = sigreg(z.detach(), config, _gen(8)).item()
    variances = torch.cov(z.detach().T).diagonal()
    assert after < 0.05 * before
    assert z.detach().mean(0).abs().max() < 0.2
    # Started with variances 9 and 0.04 (anisotropy 225); now all near 1.
    assert variances.min() > 0.6 and variances.max() < 2.0
    assert variances.max() / variances.min() < 2.5


def test_rejects_bad_shapes_and_configs():
    with pytest.raises(ValueError, match="at least 2 samples"):
        sigreg(torch.randn(1, 4))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        sigreg(torch.randn(4))
    with pytest.raises(ValueError, match="num_knots"):
        SIGRegConfig(num_knots=1)
