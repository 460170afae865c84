"""Sinusoid regression tasks (MAML protocol): shapes, parameter ranges, seeding."""
import math

import pytest
import torch

from learnfast.data import SinusoidTasks


def fit_sinusoid(x, y):
    """Least-squares fit of ``y = A sin(x - phi) = a sin x + b cos x`` per task; returns A, phi, max residual."""
    x, y = x.double().squeeze(-1), y.double().squeeze(-1)  # (B, n)
    design = torch.stack([torch.sin(x), torch.cos(x)], dim=-1)  # (B, n, 2)
    coef = torch.linalg.lstsq(design, y.unsqueeze(-1)).solution.squeeze(-1)  # (B, 2)
    a, b = coef[:, 0], coef[:, 1]  # a = A cos(phi), b = -A sin(phi)
    residual = (design @ coef.unsqueeze(-1)).squeeze(-1) - y
    return torch.hypot(a, b), torch.atan2(-b, a), residual.abs().max()


def test_shapes():
    batch = SinusoidTasks(shots=5, queries=7).sample(4, torch.Generator().manual_seed(0))
    assert batch.support_x.shape == (4, 5, 1) and batch.support_y.shape == (4, 5, 1)
    assert batch.query_x.shape == (4, 7, 1) and batch.query_y.shape == (4, 7, 1)


@pytest.mark.parametrize("amplitude, phase", [((0.1, 5.0), (0.0, math.pi)), ((2.0, 3.0), (0.5, 1.0))])
def test_amplitude_phase_and_x_ranges(amplitude, phase):
    source = SinusoidTasks(shots=6, queries=6, amplitude=amplitude, phase=phase, x_range=(-5.0, 5.0))
    batch = source.sample(200, torch.Generator().manual_seed(1))
    x = torch.cat([batch.support_x, batch.query_x], dim=1)
    y = torch.cat([batch.support_y, batch.query_y], dim=1)
    amp, phi, residual = fit_sinusoid(x, y)
    assert residual < 1e-4  # support and query come from one sinusoid per task
    tol = 1e-4
    assert amp.min() >= amplitude[0] - tol and amp.max() <= amplitude[1] + tol
    assert phi.min() >= phase[0] - tol and phi.max() <= phase[1] + tol
    # the draws actually spread over the range (not a constant)
    assert amp.max() - amp.min() > 0.5 * (amplitude[1] - amplitude[0])
    assert x.min() >= -5.0 and x.max() <= 5.0
    assert x.max() - x.min() > 9.0


def test_seeded_determinism():
    source = SinusoidTasks(shots=5, queries=5)
    a = source.sample(3, torch.Generator().manual_seed(7))
    b = source.sample(3, torch.Generator().manual_seed(7))
    c = source.sample(3, torch.Generator().manual_seed(8))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a.support_y, c.support_y)


@pytest.mark.parametrize("shots, queries", [(0, 5), (5, 0), (-1, 1)])
def test_rejects_empty_sets(shots, queries):
    with pytest.raises(ValueError, match="shots and queries must be >= 1"):
        SinusoidTasks(shots=shots, queries=queries)
