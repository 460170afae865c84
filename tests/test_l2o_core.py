"""learnfast.optim's core: preprocessing, the coordinate-wise LSTM, the update rules and the truncated meta-gradient."""
import math

import pytest
import torch
from torch.func import functional_call, grad

from learnfast.functional import preprocess_gradient
from learnfast.inner import sgd
from learnfast.optim import (LSTMOptimizer, MNIST1DProblems, MomentumLSTM, Optimizee, Quadratic, QuadraticProblems, learned_rule, meta_gradient,
                             nesterov, problem_task, quadratic_optimizee, rmsprop, run)
from learnfast.optim.quadratic import squared_error


def test_preprocessing_values():
    p = 10.0
    g = torch.tensor([1.0, -math.exp(-5.0), math.exp(-12.0), 0.0, -2 * math.exp(-11.0)], dtype=torch.float64)
    expected = torch.tensor([[0.0, 1.0], [-0.5, -1.0], [-1.0, math.exp(-2.0)], [-1.0, 0.0], [-1.0, -2 * math.exp(-1.0)]],
                            dtype=torch.float64)
    torch.testing.assert_close(preprocess_gradient(g, p), expected)


def random_head(net):
    """A momentum LSTM whose head is no longer zero, so that its output depends on the LSTM."""
    torch.nn.init.normal_(net.head.weight, std=0.3)
    return net


@pytest.mark.parametrize("make", [LSTMOptimizer, lambda: random_head(MomentumLSTM(0.1))], ids=["lstm", "momentum-lstm"])
def test_lstm_is_permutation_equivariant_over_coordinates(make):
    torch.manual_seed(0)
    net = make().double()
    grads = torch.randn(50, dtype=torch.float64) * torch.logspace(-6, 1, 50, dtype=torch.float64)
    state = net.initial_state(50, grads)
    for _ in range(3):  # a non-zero state too
        out, state = net(grads, state)
    perm = torch.randperm(50)
    out_perm, state_perm = net(grads[perm], type(state)(*(t[..., perm, :] for t in state)))  # coordinates: dim -2
    out, next_state = net(grads, state)
    torch.testing.assert_close(out_perm, out[perm])
    for permuted, plain in zip(state_perm, next_state):
        torch.testing.assert_close(permuted, plain[..., perm, :])


def test_learned_rule_splits_coordinates_back_to_their_parameters():
    net = LSTMOptimizer()
    rule = learned_rule(net)
    params = {"w": torch.zeros(3, 4), "b": torch.zeros(4)}
    grads = {"w": torch.randn(3, 4), "b": torch.randn(4)}
    new, state = rule.update(grads, rule.init(params), params, 0)
    updates, _ = net(torch.cat([grads["w"].reshape(-1), grads["b"]]), net.initial_state(16, grads["w"]))
    torch.testing.assert_close(new["w"], updates[:12].view(3, 4))
    torch.testing.assert_close(new["b"], updates[12:])
    assert state.hidden.shape == (2, 16, 20)


def fresh_momentum_lstm(lr):
    """A momentum LSTM before meta-training (head at zero), its learned scalars set in float64."""
    net = MomentumLSTM(lr).double()
    with torch.no_grad():
        net.log_rate.fill_(math.log(lr)), net.momentum_logit.fill_(math.log(0.9 / 0.1))
    return learned_rule(net)


@pytest.mark.parametrize("factory, reference", [
    (lambda lr: nesterov(lr), lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9, nesterov=True)),
    (lambda lr: rmsprop(lr), lambda p, lr: torch.optim.RMSprop(p, lr=lr)),
    (fresh_momentum_lstm, lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9, nesterov=True)),  # it starts as Nesterov
], ids=["nesterov", "rmsprop", "momentum-lstm-at-start"])
def test_hand_rules_equal_torch_optim(factory, reference):
    torch.manual_seed(0)
    target = torch.randn(5, dtype=torch.float64)
    w = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    opt = reference([w], 0.05)
    rule = factory(0.05)
    params = {"w": torch.zeros(5, dtype=torch.float64)}
    state = rule.init(params)
    for step in range(6):
        opt.zero_grad()
        ((w - target) ** 3).sum().backward()
        opt.step()
        params, state = rule.update({"w": 3 * (params["w"] - target) ** 2}, state, params, step)
    torch.testing.assert_close(params["w"].detach(), w.detach())


# -- the meta-gradient against finite differences, in float64 ---------------------------------------------------------
DIM, STEPS = 3, 4


def tiny_case(rule="lstm"):
    torch.manual_seed(1)
    net = LSTMOptimizer(hidden=3, output_scale=0.3) if rule == "lstm" else random_head(MomentumLSTM(0.02, hidden=3))
    net = net.double()
    optimizee = Optimizee(Quadratic(DIM), squared_error, batch_size=None, expects=(DIM,), name="quadratic")
    g = torch.Generator().manual_seed(2)
    problems = problem_task(torch.randn(2, DIM, DIM, generator=g, dtype=torch.float64),
                            torch.randn(2, DIM, generator=g, dtype=torch.float64), torch.tensor([[5], [6]]))
    return net, optimizee, problems


def reference_loss(net, phi, optimizee, problems, unroll, second_order, frozen):
    """The meta-loss whose exact gradient ``meta_gradient`` returns, written out directly.

    Truncation starts and (first order) the optimizee's gradients are taken from ``frozen``, the
    run at the unperturbed weights: that is what detaching means for the derivative.
    """
    f = lambda p, w, y: squared_error(w @ p, y)
    total = 0.0
    theta0 = optimizee.initial_params(problems)["theta"]
    for b in range(2):
        w, y = problems.support_x[b], problems.support_y[b]
        for start in range(0, STEPS, unroll):
            theta, state = frozen["theta"][b][start], frozen["state"][b][start]
            for t in range(start, start + unroll):
                g = grad(f)(theta, w, y) if second_order else frozen["grads"][b][t]
                update, state = functional_call(net, phi, (g, state))
                theta = theta + update
                total = total + f(theta, w, y) / 2  # mean over the 2 problems
    assert theta0.dtype == torch.float64
    return total / STEPS


def frozen_run(net, optimizee, problems):
    """theta_t, LSTM state_t and gradient g_t of each problem at every step, at the current weights."""
    out = {"theta": [], "state": [], "grads": []}
    theta0 = optimizee.initial_params(problems)["theta"]
    for b in range(2):
        w, y = problems.support_x[b], problems.support_y[b]
        theta, state = theta0[b], net.initial_state(DIM, theta0)
        thetas, states, grads = [], [], []
        with torch.no_grad():
            for t in range(STEPS):
                thetas.append(theta), states.append(state)
                g = 2 * w.t() @ (w @ theta - y)
                grads.append(g)
                update, state = net(g, state)
                theta = theta + update
        out["theta"].append(thetas), out["state"].append(states), out["grads"].append(grads)
    return out


@pytest.mark.parametrize("rule, unroll, second_order", [("lstm", STEPS, True), ("lstm", 2, False), ("momentum-lstm", 2, False),
                                                        pytest.param("lstm", STEPS, False, marks=pytest.mark.slow),
                                                        pytest.param("lstm", 2, True, marks=pytest.mark.slow),
                                                        pytest.param("momentum-lstm", STEPS, True, marks=pytest.mark.slow)])
def test_meta_gradient_matches_finite_differences(rule, unroll, second_order):
    net, optimizee, problems = tiny_case(rule)
    meta_params = dict(net.named_parameters())
    result = meta_gradient(optimizee, problems, learned_rule(net), meta_params, STEPS, unroll, second_order)
    frozen = frozen_run(net, optimizee, problems)
    phi = {k: v.detach().clone() for k, v in meta_params.items()}
    eps = 1e-6
    with torch.no_grad():
        value = reference_loss(net, phi, optimizee, problems, unroll, second_order, frozen)
        if unroll == STEPS:  # without truncation the value is the plain meta-loss
            torch.testing.assert_close(result.loss, value)
        for key in phi:
            flat = phi[key].view(-1)
            for i in range(0, flat.numel(), max(1, flat.numel() // 3)):  # a spread of coordinates of every tensor
                flat[i] += eps
                up = reference_loss(net, phi, optimizee, problems, unroll, second_order, frozen)
                flat[i] -= 2 * eps
                down = reference_loss(net, phi, optimizee, problems, unroll, second_order, frozen)
                flat[i] += eps
                numeric = (up - down) / (2 * eps)
                assert result.grads[key].view(-1)[i].item() == pytest.approx(numeric.item(), rel=1e-5, abs=1e-8), (key, i)


@pytest.mark.parametrize("rule, second_order", [("lstm", True), ("momentum-lstm", False)])
def test_final_objective_meta_gradient_matches_finite_differences(rule, second_order):
    """objective="final": d f(theta_T) / d phi, f on all of each problem's examples, through the whole run."""
    net, optimizee, problems = tiny_case(rule)
    meta_params = dict(net.named_parameters())
    result = meta_gradient(optimizee, problems, learned_rule(net), meta_params, STEPS, STEPS, second_order, objective="final")
    frozen = frozen_run(net, optimizee, problems)
    f = lambda p, w, y: squared_error(w @ p, y)

    def final_loss(phi):
        total = 0.0
        for b in range(2):
            w, y = problems.support_x[b], problems.support_y[b]
            theta, state = frozen["theta"][b][0], frozen["state"][b][0]
            for t in range(STEPS):
                update, state = functional_call(net, phi, (grad(f)(theta, w, y) if second_order else frozen["grads"][b][t], state))
                theta = theta + update
            total = total + f(theta, w, y) / 2
        return total

    phi = {k: v.detach().clone() for k, v in meta_params.items()}
    with torch.no_grad():
        torch.testing.assert_close(result.loss, final_loss(phi))
        for key in phi:
            flat = phi[key].view(-1)
            for i in range(0, flat.numel(), max(1, flat.numel() // 3)):
                flat[i] += 1e-6
                up = final_loss(phi)
                flat[i] -= 2e-6
                down = final_loss(phi)
                flat[i] += 1e-6
                assert result.grads[key].view(-1)[i].item() == pytest.approx(((up - down) / 2e-6).item(), rel=1e-5, abs=1e-8), (key, i)


def test_final_objective_needs_the_whole_run():
    net, optimizee, problems = tiny_case()
    with pytest.raises(ValueError, match="unroll=2 must be >= steps=4"):
        meta_gradient(optimizee, problems, learned_rule(net), dict(net.named_parameters()), STEPS, 2, objective="final")
    with pytest.raises(ValueError, match="unknown objective 'last'"):
        meta_gradient(optimizee, problems, learned_rule(net), dict(net.named_parameters()), STEPS, STEPS, objective="last")


def test_first_and_second_order_differ_and_both_are_finite():
    net, optimizee, problems = tiny_case()
    meta_params = dict(net.named_parameters())
    first = meta_gradient(optimizee, problems, learned_rule(net), meta_params, STEPS, STEPS, False).grads
    second = meta_gradient(optimizee, problems, learned_rule(net), meta_params, STEPS, STEPS, True).grads
    assert all(torch.isfinite(g).all() for g in first.values())
    assert any(not torch.allclose(first[k], second[k]) for k in first)


def test_run_records_the_whole_objective_and_does_not_touch_global_rng():
    problems = QuadraticProblems().sample(3, torch.Generator().manual_seed(0))
    optimizee = quadratic_optimizee()
    state = torch.random.get_rng_state()
    losses = run(optimizee, problems, sgd(0.005), 30)
    assert torch.equal(state, torch.random.get_rng_state())
    assert losses.shape == (31, 3) and (losses[-1] < losses[0]).all()
    again = run(optimizee, problems, sgd(0.005), 30, record=False)
    torch.testing.assert_close(again[-1], losses[-1])


def test_mnist1d_parts_are_disjoint_and_seeded():
    pytest.importorskip("mnist1d")
    train, val, test = (MNIST1DProblems(part) for part in ("train", "val", "test"))
    pools = torch.cat([train.x, val.x, test.x])
    assert len(pools) == 5000 and len(torch.unique(pools, dim=0)) == 5000  # no example in two parts
    a, b = (train.sample(2, torch.Generator().manual_seed(4)) for _ in range(2))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert a.support_x.shape == (2, 1000, 40) and a.query_x.dtype == torch.int64


def test_one_truncation_at_a_time_adds_up_to_all_of_them():
    net, optimizee, problems = tiny_case()
    meta_params = dict(net.named_parameters())
    whole = meta_gradient(optimizee, problems, learned_rule(net), meta_params, STEPS, 2)
    parts = [meta_gradient(optimizee, problems, learned_rule(net), meta_params, STEPS, 2, only=k) for k in (0, 1)]
    for key in whole.grads:
        torch.testing.assert_close(sum(p.grads[key] for p in parts) * 2 / STEPS, whole.grads[key])
    with pytest.raises(ValueError, match="truncations 0..1"):
        meta_gradient(optimizee, problems, learned_rule(net), meta_params, STEPS, 2, only=2)
