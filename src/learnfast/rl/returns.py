"""Returns, the linear feature baseline and the REINFORCE loss of the MAML paper's inner update; the
likelihood-ratio losses of ProMP (Rothfuss et al. 2019).

Trajectories are tensors ``(B, N, T, ...)``: ``B`` tasks, ``N`` trajectories, ``T`` steps. The
baseline is rllab's ``LinearFeatureBaseline`` (which the MAML authors used): per task, a ridge
regression of the discounted returns on the features ``[o, o^2, t, t^2, t^3, 1]`` (``o`` clipped to
``[-10, 10]``, ``t`` the step / 100), fitted on the same trajectories whose advantages it gives.
Advantages are normalised per task to mean 0 and standard deviation 1 (rllab's ``center_adv``).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .policy import log_prob

RIDGE = 1e-5


def discounted_returns(rewards: Tensor, gamma: float) -> Tensor:
    """``R_t = sum_{k >= t} gamma^(k - t) r_k`` along the last dimension: ``(..., T) -> (..., T)``."""
    out = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    for t in range(rewards.shape[-1] - 1, -1, -1):
        running = rewards[..., t] + gamma * running
        out[..., t] = running
    return out


def baseline_features(observations: Tensor) -> Tensor:
    """rllab's features ``[o, o^2, t, t^2, t^3, 1]``: ``(B, N, T, O) -> (B, N, T, 2O + 4)``."""
    o = observations.clamp(-10.0, 10.0)
    steps = observations.shape[-2]
    t = (torch.arange(steps, dtype=o.dtype) / 100.0).view(steps, 1).expand(*o.shape[:-1], 1)
    return torch.cat([o, o * o, t, t * t, t ** 3, torch.ones_like(t)], dim=-1)


def linear_baseline(observations: Tensor, returns: Tensor) -> Tensor:
    """Per-task ridge fit of ``returns (B, N, T)`` on ``baseline_features``; its predictions ``(B, N, T)``.

    Solved in float64; the ridge term grows tenfold (up to 5 times) while the solution is not finite, as rllab does.
    """
    features = baseline_features(observations).double().flatten(1, 2)  # (B, N*T, F)
    targets = returns.double().flatten(1, 2).unsqueeze(-1)  # (B, N*T, 1)
    gram, rhs = features.transpose(1, 2) @ features, features.transpose(1, 2) @ targets
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype)
    ridge = RIDGE
    for _ in range(5):
        coeffs = torch.linalg.lstsq(gram + ridge * eye, rhs).solution
        if torch.isfinite(coeffs).all():
            break
        ridge *= 10
    return (features @ coeffs).squeeze(-1).view(returns.shape).to(returns.dtype)


def advantages(observations: Tensor, rewards: Tensor, gamma: float) -> Tensor:
    """Normalised advantages ``(B, N, T)``: discounted returns minus the linear baseline, per task mean 0, std 1."""
    returns = discounted_returns(rewards, gamma)
    adv = returns - linear_baseline(observations, returns)
    flat = adv.flatten(1)
    return ((flat - flat.mean(1, keepdim=True)) / (flat.std(1, keepdim=True) + 1e-8)).view(adv.shape)


def pack(actions: Tensor, adv: Tensor) -> Tensor:
    """One task's actions ``(..., A)`` and advantages ``(...)`` as the inner loop's targets ``(..., A + 1)``."""
    return torch.cat([actions, adv.unsqueeze(-1)], dim=-1)


def reinforce_loss(output: Tensor, targets: Tensor) -> Tensor:
    """The vanilla policy-gradient surrogate ``-mean(log pi(a|s) * A)`` over every step of the trajectories.

    ``output (..., 2A)`` is the policy's on the visited observations, ``targets (..., A + 1)`` the
    ``pack``ed actions and advantages; its gradient is the REINFORCE estimate (with baseline) of
    minus the return's gradient. The ``loss_fn`` of ``learnfast.inner.adapt``.
    """
    return -(log_prob(output, targets[..., :-1]) * targets[..., -1]).mean()


def pack_ratio(actions: Tensor, adv: Tensor, old_log_probs: Tensor) -> Tensor:
    """``pack`` plus the sampling policy's log-densities: targets ``(..., A + 2)`` of the ratio losses."""
    return torch.cat([actions, adv.unsqueeze(-1), old_log_probs.unsqueeze(-1)], dim=-1)


def _ratio(output: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """``pi(a|s) / pi_old(a|s)`` and the advantages, from ``pack_ratio`` targets."""
    return torch.exp(log_prob(output, targets[..., :-2]) - targets[..., -1]), targets[..., -2]


def likelihood_ratio_loss(output: Tensor, targets: Tensor) -> Tensor:
    """``-mean(pi / pi_old * A)``: ProMP's inner objective (its "LVC" estimator), on ``pack_ratio`` targets.

    Where the policy is the sampling one its gradient is REINFORCE's (``reinforce_loss``); its Hessian keeps the
    ``grad log pi grad log pi^T`` term, and away from the sampling policy it stays an unbiased off-policy estimate.
    """
    ratio, adv = _ratio(output, targets)
    return -(ratio * adv).mean()


def clipped_loss(output: Tensor, targets: Tensor, clip: float) -> Tensor:
    """PPO's clipped surrogate ``-mean(min(r A, clip(r, 1 - clip, 1 + clip) A))``, ``r = pi / pi_old``: ProMP's outer objective."""
    ratio, adv = _ratio(output, targets)
    return -torch.minimum(ratio * adv, ratio.clamp(1.0 - clip, 1.0 + clip) * adv).mean()
