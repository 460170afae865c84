"""Reptile: the pseudo-gradient is exactly theta - mean(phi), one outer SGD step is the paper's update,
and the logged loss / predictions are those of a test episode."""
import copy
import json

import pytest
import torch
import torch.nn.functional as F

import learnfast as lf
from learnfast.algorithms import ALGORITHMS
from learnfast.algorithms.reptile import Reptile
from learnfast.data import SinusoidTasks
from learnfast.train.build import build_algorithm
from learnfast.train.config import RunConfig, load_config
from learnfast.train.trainer import Trainer
from conftest import blob_tasks, image_tasks

DT = torch.float64


def mlp(seed=0):
    torch.manual_seed(seed)
    return lf.MLP(in_features=8, hidden=(8,), out_features=3).double()


def blobs(seed=0, size=3):
    return blob_tasks(size, torch.Generator().manual_seed(seed), dtype=DT)


def mean_phi(model, tasks, inner_lr, steps, loss_fn=F.cross_entropy):
    """The oracle: per task, ``steps`` plain SGD steps on support + query together, via ``adapt``."""
    theta = {k: v.detach() for k, v in lf.params_of(model).items()}
    phis = []
    for t in range(tasks.batch_size):
        x = torch.cat([tasks.support_x[t], tasks.query_x[t]])
        y = torch.cat([tasks.support_y[t], tasks.query_y[t]])
        phis.append(lf.adapt(model, theta, x, y, loss_fn, steps, lf.sgd(inner_lr)))
    return {k: torch.stack([phi[k] for phi in phis]).mean(0) for k in theta}


def pseudo_gradient(reptile, tasks):
    out = reptile.meta_loss(tasks)
    out.loss.backward()
    return out, {k[len("model."):]: p.grad for k, p in reptile.named_parameters()}


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
@pytest.mark.parametrize("steps", [1, 4])
def test_pseudo_gradient_is_theta_minus_mean_phi(strategy, steps):
    model, tasks = mlp(), blobs(size=3)
    reptile = Reptile(copy.deepcopy(model), inner_lr=0.3, inner_steps=steps, strategy=strategy)
    _, grads = pseudo_gradient(reptile, tasks)
    phi = mean_phi(model, tasks, 0.3, steps)
    for k, p in model.named_parameters():
        expected = p.detach() - phi[k]
        assert expected.abs().max() > 1e-4, k  # not vacuous
        assert torch.allclose(grads[k], expected, atol=1e-14, rtol=0), k


def test_one_inner_step_is_the_scaled_task_gradient():
    """k = 1: theta - phi = alpha * grad of the task loss at theta (the paper's joint-training limit)."""
    model, tasks = mlp(), blobs(size=3)
    _, grads = pseudo_gradient(Reptile(copy.deepcopy(model), inner_lr=0.3, inner_steps=1), tasks)
    params = lf.params_of(model)
    total = {k: torch.zeros_like(v) for k, v in params.items()}
    for t in range(tasks.batch_size):
        x = torch.cat([tasks.support_x[t], tasks.query_x[t]])
        y = torch.cat([tasks.support_y[t], tasks.query_y[t]])
        for k, g in zip(params, torch.autograd.grad(F.cross_entropy(model(x), y), list(params.values()))):
            total[k] += 0.3 * g / tasks.batch_size
    for k in params:
        assert torch.allclose(grads[k], total[k], atol=1e-14, rtol=0), k


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_zero_inner_steps_gives_zero_pseudo_gradient(strategy):
    reptile = Reptile(mlp(), inner_lr=0.3, inner_steps=0, strategy=strategy)
    _, grads = pseudo_gradient(reptile, blobs(size=3))
    for k, g in grads.items():
        assert torch.equal(g, torch.zeros_like(g)), k


def test_outer_sgd_step_is_the_reptile_update():
    """One trainer step (zero_grad, backward, step) with SGD(lr=eps): theta <- theta - eps (theta - mean(phi))."""
    model, tasks, eps = mlp(), blobs(size=3), 0.25
    reptile = Reptile(copy.deepcopy(model), inner_lr=0.3, inner_steps=3)
    opt = torch.optim.SGD(reptile.parameters(), lr=eps)
    opt.zero_grad(set_to_none=True)
    reptile.meta_loss(tasks).loss.backward()
    opt.step()
    phi = mean_phi(model, tasks, 0.3, 3)
    for k, p in model.named_parameters():
        theta = p.detach()
        assert torch.allclose(reptile.model.get_parameter(k), theta - eps * (theta - phi[k]), atol=1e-14, rtol=0), k


def test_trainer_step_with_outer_sgd(tmp_path):
    """Through the real Trainer (sinusoid, float32), with its optimizer swapped for SGD(lr=eps)."""
    eps = 0.5
    cfg = RunConfig(name="tiny-reptile", algorithm={"name": "reptile", "inner_lr": 0.01, "inner_steps": 3})
    cfg.data.dataset = "sinusoid"
    cfg.model.backbone, cfg.model.hidden = "mlp", 8
    for key, value in dict(shots=5, queries=5, meta_batch=3, iterations=1, lr=eps, val_every=1, val_episodes=2,
                           checkpoint_every=1, seed=3).items():
        setattr(cfg.train, key, value)
    cfg.eval.shots, cfg.eval.queries, cfg.eval.episodes = 5, 5, 2
    trainer = Trainer(cfg, tmp_path, progress=False)
    trainer.optimizer = torch.optim.SGD(trainer.algorithm.parameters(), lr=eps)
    start = copy.deepcopy(trainer.algorithm.model)
    trainer.fit()
    tasks = SinusoidTasks(shots=5, queries=5).sample(3, torch.Generator().manual_seed(3))  # the trainer's first batch
    phi = mean_phi(start, tasks, 0.01, 3, loss_fn=F.mse_loss)
    for k, p in start.named_parameters():
        theta, moved = p.detach(), trainer.algorithm.model.get_parameter(k).detach()
        assert (moved - theta).abs().max() > 1e-3, k  # the step is far larger than the tolerance
        assert torch.allclose(moved, theta - eps * (theta - phi[k]), atol=1e-6, rtol=0), k


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_loss_and_predictions_are_those_of_a_test_episode(strategy):
    """Predictions adapt to the support set alone; the loss value is their query loss."""
    model, tasks = mlp(), blobs(size=3)
    reptile = Reptile(copy.deepcopy(model), inner_lr=0.3, inner_steps=2, strategy=strategy)
    out = reptile.meta_loss(tasks)
    assert not out.predictions.requires_grad
    for t in range(tasks.batch_size):
        fast = lf.adapt(model, lf.params_of(model), tasks.support_x[t], tasks.support_y[t], F.cross_entropy, 2, lf.sgd(0.3))
        assert torch.allclose(out.predictions[t], lf.forward_with(model, fast, tasks.query_x[t]), atol=1e-13, rtol=0)
    assert torch.allclose(out.predictions, reptile(tasks), atol=1e-13, rtol=0)
    expected = torch.stack([F.cross_entropy(out.predictions[t], tasks.query_y[t]) for t in range(3)]).mean()
    assert torch.allclose(out.loss, expected, atol=1e-14, rtol=0)


def test_eval_inner_steps_at_test_time():
    model, tasks = mlp(), blobs()
    reptile = Reptile(copy.deepcopy(model), inner_lr=0.3, inner_steps=1, eval_inner_steps=4)
    reptile.eval()
    fast = lf.adapt(model, lf.params_of(model), tasks.support_x[0], tasks.support_y[0], F.cross_entropy, 4, lf.sgd(0.3))
    assert torch.allclose(reptile(tasks)[0], lf.forward_with(model, fast, tasks.query_x[0]), atol=1e-13, rtol=0)


@pytest.mark.parametrize("strided", [True, False], ids=["strided", "maxpool"])
def test_vmap_pseudo_gradient_equals_loop_with_batchnorm(strided):
    torch.manual_seed(0)
    model = lf.Conv4(in_channels=1, hidden=4, out_features=3, strided=strided).double()
    tasks = image_tasks(3, torch.Generator().manual_seed(1), size=16)
    grads = {}
    for strategy in ("loop", "vmap"):
        _, grads[strategy] = pseudo_gradient(Reptile(copy.deepcopy(model), inner_lr=0.1, inner_steps=3, strategy=strategy), tasks)
    assert max(g.abs().max().item() for g in grads["loop"].values()) > 1e-3
    assert max((grads["vmap"][k] - grads["loop"][k]).abs().max().item() for k in grads["loop"]) < 1e-10


def test_constructor_errors():
    with pytest.raises(ValueError, match="inner_steps and eval_inner_steps must be >= 0"):
        Reptile(mlp(), inner_steps=-1)
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        Reptile(mlp(), loss="hinge")


@pytest.mark.parametrize("strategy", ["threads", "auto"])
def test_strategies_it_does_not_run_are_refused(strategy):
    """Reptile's meta-batch is a loop or vmap; threads (and auto, threads on CPU) would be ignored."""
    with pytest.raises(ValueError, match=rf"Reptile cannot run strategy='{strategy}'.*\('loop', 'vmap'\)"):
        Reptile(mlp(), strategy=strategy)


@pytest.mark.parametrize("name, shots, eval_batch", [("reptile-omniglot-5w1s", 1, 5), ("reptile-omniglot-5w5s", 5, 10)])
def test_registered_and_named_configs_build_the_papers_recipe(name, shots, eval_batch):
    assert ALGORITHMS["reptile"] is Reptile
    cfg = load_config(name)
    reptile = build_algorithm(cfg)
    assert isinstance(reptile, Reptile) and (reptile.inner_steps, reptile.eval_inner_steps) == (5, 50)
    assert (reptile.inner_optimizer, reptile.inner_lr, reptile.inner_batch, reptile.eval_inner_batch) == ("adam", 1e-3, 10, eval_batch)
    assert cfg.train.shots + cfg.train.queries == 10  # the paper's train-shots 10
    assert (cfg.train.shots, cfg.eval.shots, cfg.train.meta_batch) == (shots, shots, 5)
    assert (cfg.train.optimizer, cfg.train.lr, cfg.train.lr_anneal, cfg.train.iterations) == ("sgd", 1.0, True, 100000)
    assert reptile.inner_state == "carried" and not reptile.log_episode


def test_fomaml_config_builds_first_order_maml():
    maml = build_algorithm(load_config("fomaml-omniglot-5w1s"))
    assert isinstance(maml, lf.MAML) and maml.first_order


def adam_phi(model, tasks, lr, steps):
    """The Adam oracle: per task, ``steps`` torch.optim.Adam steps (betas (0, 0.999)) on support + query."""
    phis = []
    for t in range(tasks.batch_size):
        x = torch.cat([tasks.support_x[t], tasks.query_x[t]])
        y = torch.cat([tasks.support_y[t], tasks.query_y[t]])
        copy_ = copy.deepcopy(model)
        opt = torch.optim.Adam(copy_.parameters(), lr=lr, betas=(0.0, 0.999))
        for _ in range(steps):
            opt.zero_grad()
            F.cross_entropy(copy_(x), y).backward()
            opt.step()
        phis.append(dict(copy_.named_parameters()))
    return {k: torch.stack([phi[k].detach() for phi in phis]).mean(0) for k, _ in model.named_parameters()}


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_adam_inner_optimizer_pseudo_gradient(strategy):
    """inner_optimizer="adam" (the paper's inner loop): theta - mean(phi) with phi from torch.optim.Adam."""
    model, tasks = mlp(), blobs(size=3)
    reptile = Reptile(copy.deepcopy(model), inner_lr=0.02, inner_steps=4, strategy=strategy, inner_optimizer="adam")
    _, grads = pseudo_gradient(reptile, tasks)
    phi = adam_phi(model, tasks, 0.02, 4)
    sgd_phi = mean_phi(model, tasks, 0.02, 4)
    for k, p in model.named_parameters():
        assert not torch.allclose(phi[k], sgd_phi[k], atol=1e-6), k  # Adam really ran
        assert torch.allclose(grads[k], p.detach() - phi[k], atol=1e-12, rtol=0), k


def test_inner_optimizer_is_a_config_key_and_checked():
    cfg = RunConfig(algorithm={"name": "reptile", "inner_optimizer": "adam", "inner_lr": 1e-3, "bn": "support"})
    cfg.model.backbone, cfg.model.hidden = "conv4", 4
    reptile = build_algorithm(cfg)
    assert reptile.inner_optimizer == "adam" and reptile.inner.bn == "support"
    with pytest.raises(ValueError, match="unknown inner_optimizer 'rmsprop'"):
        Reptile(mlp(), inner_optimizer="rmsprop")


# -- inner mini-batches (the paper's recipe) ---------------------------------------------------------
from learnfast.inner import minibatch_order  # noqa: E402


@pytest.mark.parametrize("n, size, steps", [(50, 10, 5), (12, 5, 7), (6, 6, 3), (7, 3, 1)])
def test_minibatches_cover_each_example_once_per_epoch(n, size, steps):
    order = minibatch_order(n, size, steps, torch.Generator().manual_seed(3))
    assert order.shape == (steps, size)
    flat = order.flatten().tolist()
    for start in range(0, len(flat), n):
        epoch = flat[start:start + n]
        assert len(set(epoch)) == len(epoch), f"an example repeats within an epoch: {epoch}"
    assert all(0 <= i < n for i in flat)


def test_minibatches_are_seeded_and_the_fixed_order_needs_no_random_op():
    a = minibatch_order(20, 4, 9, torch.Generator().manual_seed(1))
    assert torch.equal(a, minibatch_order(20, 4, 9, torch.Generator().manual_seed(1)))
    assert not torch.equal(a, minibatch_order(20, 4, 9, torch.Generator().manual_seed(2)))
    fixed = minibatch_order(20, 4, 9, None)
    assert torch.equal(fixed, minibatch_order(20, 4, 9, None))
    assert sorted(fixed[:5].flatten().tolist()) == list(range(20))  # the first epoch is a permutation
    under_vmap = torch.func.vmap(lambda x: x[minibatch_order(20, 4, 9, None)].sum())(torch.randn(3, 20))
    assert under_vmap.shape == (3,)


def test_minibatch_errors():
    with pytest.raises(ValueError, match="larger than the task's 5 examples"):
        minibatch_order(5, 6, 1, None)
    with pytest.raises(ValueError, match="inner_batch must be >= 1"):
        Reptile(mlp(), inner_batch=0)


def oracle_phi_minibatch(model, tasks, inner_lr, steps, size, seed):
    """Per task: torch.optim.Adam (beta1 = 0, fresh moments) on an nn.Module copy, one mini-batch per step."""
    generator = torch.Generator().manual_seed(seed)
    phis = []
    for t in range(tasks.batch_size):
        x = torch.cat([tasks.support_x[t], tasks.query_x[t]])
        y = torch.cat([tasks.support_y[t], tasks.query_y[t]])
        order = minibatch_order(len(x), size, steps, generator)
        net = copy.deepcopy(model)
        opt = torch.optim.Adam(net.parameters(), lr=inner_lr, betas=(0.0, 0.999))
        for step in range(steps):
            opt.zero_grad()
            F.cross_entropy(net(x[order[step]]), y[order[step]]).backward()
            opt.step()
        phis.append(dict(net.named_parameters()))
    return {k: torch.stack([phi[k].detach() for phi in phis]).mean(0) for k, _ in model.named_parameters()}


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_minibatch_pseudo_gradient_is_theta_minus_mean_phi(strategy):
    model, tasks = mlp(), blobs(size=3)  # 3 ways x (2 + 4) examples = 18 per task
    reptile = Reptile(copy.deepcopy(model), inner_lr=0.01, inner_steps=5, strategy=strategy, inner_optimizer="adam", inner_batch=4)
    out = reptile.meta_loss(tasks, generator=torch.Generator().manual_seed(11))
    out.loss.backward()
    phi = oracle_phi_minibatch(model, tasks, 0.01, 5, 4, seed=11)
    for k, p in model.named_parameters():
        expected = p.detach() - phi[k]
        assert expected.abs().max() > 1e-4, k
        torch.testing.assert_close(reptile.get_parameter("model." + k).grad, expected, atol=1e-10, rtol=1e-8)


def test_minibatches_differ_from_full_batch_and_follow_the_generator():
    model, tasks = mlp(), blobs(size=2)
    grads = []
    for seed in (1, 1, 2):
        reptile = Reptile(copy.deepcopy(model), inner_lr=0.1, inner_steps=3, inner_batch=5)
        reptile.meta_loss(tasks, generator=torch.Generator().manual_seed(seed)).loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in reptile.parameters()]))
    assert torch.equal(grads[0], grads[1]) and not torch.allclose(grads[0], grads[2])


def test_eval_minibatches_are_deterministic():
    reptile = Reptile(mlp(), inner_lr=0.1, inner_steps=3, eval_inner_batch=2).eval()
    tasks = blobs(size=2)
    assert torch.equal(reptile(tasks), reptile(tasks))
    full = Reptile(mlp(), inner_lr=0.1, inner_steps=3).eval()
    assert not torch.allclose(reptile(tasks), full(tasks))


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_training_fit_logging_keeps_the_pseudo_gradient_and_reports_phi_on_the_query(strategy):
    model, tasks = mlp(), blobs(size=3)
    logged = Reptile(copy.deepcopy(model), inner_lr=0.3, inner_steps=2, strategy=strategy)
    fit = Reptile(copy.deepcopy(model), inner_lr=0.3, inner_steps=2, strategy=strategy, log_episode=False)
    _, grads_logged = pseudo_gradient(logged, tasks)
    out, grads_fit = pseudo_gradient(fit, tasks)
    for k in grads_logged:
        torch.testing.assert_close(grads_fit[k], grads_logged[k], atol=1e-14, rtol=0)
    theta = {k: v.detach() for k, v in lf.params_of(model).items()}
    x, y = torch.cat([tasks.support_x[0], tasks.query_x[0]]), torch.cat([tasks.support_y[0], tasks.query_y[0]])
    phi0 = lf.adapt(model, theta, x, y, F.cross_entropy, 2, lf.sgd(0.3))
    torch.testing.assert_close(out.predictions[0], lf.forward_with(model, phi0, tasks.query_x[0]))


def test_carried_adam_state_is_the_authors_one_optimizer_across_tasks():
    """inner_state='carried' = one torch.optim.Adam (beta1 = 0) for all tasks, the weights reset to theta for each task."""
    model, tasks = mlp(), blobs(size=3)
    reptile = Reptile(copy.deepcopy(model), inner_lr=0.01, inner_steps=3, inner_optimizer="adam", inner_state="carried", inner_batch=4)
    generator = torch.Generator().manual_seed(5)
    for _ in range(2):  # two meta-batches: the state carries across them too
        reptile.zero_grad()
        reptile.meta_loss(tasks, generator=generator).loss.backward()
    grads = {k[len("model."):]: p.grad.clone() for k, p in reptile.named_parameters()}

    # the oracle replays the same two meta-batches: theta moves by the first pseudo-gradient with outer SGD step 0
    oracle_net = copy.deepcopy(model)
    opt = torch.optim.Adam(oracle_net.parameters(), lr=0.01, betas=(0.0, 0.999))
    theta = {k: v.detach().clone() for k, v in model.named_parameters()}
    generator = torch.Generator().manual_seed(5)
    for _ in range(2):
        phis = []
        for t in range(tasks.batch_size):
            x = torch.cat([tasks.support_x[t], tasks.query_x[t]])
            y = torch.cat([tasks.support_y[t], tasks.query_y[t]])
            order = minibatch_order(len(x), 4, 3, generator)
            with torch.no_grad():
                for k, p in oracle_net.named_parameters():
                    p.copy_(theta[k])
            for step in range(3):
                opt.zero_grad()
                F.cross_entropy(oracle_net(x[order[step]]), y[order[step]]).backward()
                opt.step()
            phis.append({k: p.detach().clone() for k, p in oracle_net.named_parameters()})
    for k in theta:
        expected = theta[k] - torch.stack([phi[k] for phi in phis]).mean(0)
        torch.testing.assert_close(grads[k], expected, atol=1e-10, rtol=1e-8)
    assert int(reptile.adam_steps) == 2 * 3 * 3


def test_carried_state_needs_adam_and_the_loop():
    with pytest.raises(ValueError, match="needs inner_optimizer='adam' and strategy='loop'"):
        Reptile(mlp(), inner_state="carried")
    with pytest.raises(ValueError, match="unknown inner_state"):
        Reptile(mlp(), inner_state="global")


@pytest.mark.parametrize("log_episode", [True, False])
def test_skipped_training_figures_keep_the_pseudo_gradient(log_episode):
    """With training_figures off (the trainer's unlogged iterations) Reptile skips its extra forward passes only."""
    model, tasks = mlp(), blobs(size=3)
    grads = {}
    for figures in (True, False):
        reptile = Reptile(copy.deepcopy(model), inner_lr=0.3, inner_steps=2, log_episode=log_episode)
        reptile.training_figures = figures
        out, grads[figures] = pseudo_gradient(reptile, tasks)
        assert (out.predictions is None) == (not figures)
    for k in grads[True]:
        assert torch.equal(grads[True][k], grads[False][k]), k


def test_trainer_reads_figures_only_where_logged_and_the_weights_do_not_change(tmp_path):
    """Unlogged iterations skip the figures; the run's weights are the same bit for bit as with every figure read."""
    cfg = RunConfig(name="tiny-reptile", algorithm={"name": "reptile", "inner_lr": 0.01, "inner_steps": 2})
    cfg.data.dataset = "sinusoid"
    cfg.model.backbone, cfg.model.hidden = "mlp", 8
    for key, value in dict(shots=5, queries=5, meta_batch=2, iterations=25, val_every=20, val_episodes=2, seed=3).items():
        setattr(cfg.train, key, value)
    cfg.eval.shots, cfg.eval.queries, cfg.eval.episodes = 5, 5, 2
    seen = []
    every = Trainer(cfg, tmp_path / "every", progress=False, callbacks=(lambda i, record: seen.append(dict(record)),))
    every.fit()
    assert len(seen) == 25 and all("loss" in r and "mse" in r for r in seen)  # a callback reads every iteration
    skipping = Trainer(cfg, tmp_path / "skipping", progress=False)
    skipping.fit()
    for (k, a), (_, b) in zip(every.algorithm.state_dict().items(), skipping.algorithm.state_dict().items()):
        assert torch.equal(a, b), k
    log = [json.loads(line) for line in (tmp_path / "skipping" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log] == [10, 20, 25] and all("loss" in r and "mse" in r for r in log)
    assert [r["mse"] for r in log] == [seen[i - 1]["mse"] for i in (10, 20, 25)]
