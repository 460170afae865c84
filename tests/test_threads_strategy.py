"""The ``threads`` strategy (tasks on worker threads, channels-last inputs) and ``auto``.

Every case compares against the reference loop in float64 with 3 worker threads, so the threaded
path (replicas, ordered accumulation) really runs; the conftest default of one thread would run
the tasks inline.
"""
import copy

import pytest
import torch

import learnfast as lf
from learnfast.algorithms.strategies import STRATEGIES, channels_last_images, resolve_strategy
from conftest import bn_conv4, image_tasks, tiny_mlp

TOL = 1e-10


@pytest.fixture
def three_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    yield
    torch.set_num_threads(before)


def run(algorithm, tasks):
    out = algorithm.meta_loss(tasks)
    out.loss.backward()
    return out, {k: p.grad for k, p in algorithm.named_parameters() if p.requires_grad}


def assert_same_as_loop(build, tasks):
    out_loop, loop = run(build("loop"), tasks)
    out_threads, threads = run(build("threads"), tasks)
    assert max(g.abs().max().item() for g in loop.values()) > 1e-3  # not a vacuous comparison
    assert max((threads[k] - loop[k]).abs().max().item() for k in loop) < TOL
    assert abs(out_loop.loss.item() - out_threads.loss.item()) < TOL
    assert (out_loop.predictions - out_threads.predictions).abs().max().item() < TOL


@pytest.mark.parametrize("strided", [True, False], ids=["strided", "maxpool"])
@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("memory", ["second-order", "first-order", "checkpoint", "implicit"])
def test_threads_meta_gradient_equals_loop(three_threads, strided, steps, memory):
    model = bn_conv4(strided)  # BatchNorm with non-trivial learnable scale and shift
    tasks = image_tasks(4, torch.Generator().manual_seed(1))
    build = lambda strategy: lf.MAML(copy.deepcopy(model), inner_lr=0.4, inner_steps=steps, memory=memory, strategy=strategy)
    assert_same_as_loop(build, tasks)


@pytest.mark.parametrize("bn", ["support", "per-step"])
def test_threads_with_batchnorm_policies(three_threads, bn):
    model = bn_conv4(strided=False)
    tasks = image_tasks(3, torch.Generator().manual_seed(2))
    assert_same_as_loop(lambda s: lf.MAML(copy.deepcopy(model), inner_steps=2, bn=bn, strategy=s), tasks)


def test_threads_composes_with_other_task_losses(three_threads):
    """ANIL (only the head adapts) and Meta-SGD (learned rates are meta-parameters too) through the same path."""
    tasks = image_tasks(3, torch.Generator().manual_seed(3))
    model = bn_conv4(strided=True)
    assert_same_as_loop(lambda s: lf.ANIL(copy.deepcopy(model), inner_steps=2, strategy=s), tasks)
    assert_same_as_loop(lambda s: lf.MetaSGD(copy.deepcopy(model), inner_lr=0.1, strategy=s), tasks)


def test_threads_on_vector_inputs(three_threads):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat(2).expand(5, 6)
    tasks = lf.Task(torch.randn(5, 6, 8, generator=g, dtype=torch.float64), y, torch.randn(5, 6, 8, generator=g, dtype=torch.float64), y)
    model = tiny_mlp()
    assert_same_as_loop(lambda s: lf.MAML(copy.deepcopy(model), inner_lr=0.3, inner_steps=2, strategy=s), tasks)


def test_threads_forward_equals_loop_and_is_repeatable(three_threads):
    model = bn_conv4(strided=False)
    tasks = image_tasks(5, torch.Generator().manual_seed(4))
    loop = lf.MAML(copy.deepcopy(model), inner_steps=2, strategy="loop")
    threads = lf.MAML(copy.deepcopy(model), inner_steps=2, strategy="threads")
    with torch.no_grad():
        expected, first, second = loop(tasks), threads(tasks), threads(tasks)
    assert (first - expected).abs().max().item() < TOL
    assert torch.equal(first, second)


def test_threads_leaves_the_callers_thread_count_and_parameters_alone(three_threads):
    maml = lf.MAML(bn_conv4(strided=True), inner_steps=1, strategy="threads")
    before = {k: v.clone() for k, v in maml.state_dict().items()}
    maml.meta_loss(image_tasks(4, torch.Generator().manual_seed(5)))
    assert torch.get_num_threads() == 3
    assert all(torch.equal(before[k], v) for k, v in maml.state_dict().items())


def test_auto_picks_threads_on_cpu_and_never_vmap_with_checkpoint():
    assert resolve_strategy("auto", torch.device("cpu")) == "threads"
    assert resolve_strategy("auto", torch.device("cuda")) == "vmap"
    assert resolve_strategy("auto", torch.device("cuda"), vmap_ok=False) == "loop"
    assert resolve_strategy("loop", torch.device("cuda")) == "loop"
    maml = lf.MAML(bn_conv4(strided=True), strategy="auto", memory="checkpoint")
    assert maml.execution_strategy(image_tasks(2, torch.Generator().manual_seed(0))) == "threads"


def test_unknown_strategy_names_the_choices():
    with pytest.raises(ValueError, match="threads"):
        lf.MAML(bn_conv4(strided=True), strategy="fast")
    assert set(STRATEGIES) == {"loop", "vmap", "threads", "auto"}


def test_channels_last_images_relabels_one_channel_without_copy():
    x = torch.randn(2, 7, 1, 5, 6)[1]  # a task's slice of a batch: (n, 1, H, W) at an offset
    y = channels_last_images(x)
    assert y.is_contiguous(memory_format=torch.channels_last) and y.data_ptr() == x.data_ptr()
    assert torch.equal(y, x) and torch.equal(y.reshape(7, -1), x.reshape(7, -1))
    conv = torch.nn.Conv2d(1, 4, 3, padding=1)
    assert conv(y).is_contiguous(memory_format=torch.channels_last)
    for other in (torch.randn(3, 2, 5, 5), torch.randn(3, 8), torch.randn(3, 1, 5, 5).transpose(2, 3)):
        assert channels_last_images(other) is other


def test_threads_meta_loss_under_no_grad_gives_the_loss(three_threads):
    model = bn_conv4(strided=True)
    tasks = image_tasks(3, torch.Generator().manual_seed(6))
    with torch.no_grad():
        loop = lf.MAML(copy.deepcopy(model), strategy="loop").meta_loss(tasks)
        threads = lf.MAML(copy.deepcopy(model), strategy="threads").meta_loss(tasks)
    assert abs(loop.loss.item() - threads.loss.item()) < TOL and not threads.loss.requires_grad


def test_keep_freed_memory_reports_whether_it_applied():
    """Process-wide, so it runs in a child process rather than flipping the test session's allocator."""
    import platform
    import subprocess
    import sys

    code = "from learnfast.host_memory import keep_freed_memory; print(keep_freed_memory())"
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert answer in ("True", "False")
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert answer == "True"
