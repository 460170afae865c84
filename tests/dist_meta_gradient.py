"""Run by tests/test_distributed.py under torchrun (or alone): a float64 MAML meta-gradient of one fixed
meta-batch, each rank on its share of the tasks, averaged over the ranks; rank 0 saves it to argv[1]."""
import sys

import torch

import learnfast as lf
from learnfast.train.distributed import average_gradients, close_ranks, exit_rank, init_ranks, shard_tasks

TASKS = 4


def fixed_batch() -> lf.Task:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(TASKS, 10, 1, generator=g, dtype=torch.float64) * 10 - 5
    amplitude, phase = torch.rand(TASKS, 1, 1, generator=g, dtype=torch.float64) + 0.5, torch.rand(TASKS, 1, 1, generator=g, dtype=torch.float64) * 3
    y = amplitude * torch.sin(x + phase)
    return lf.Task(x[:, :5], y[:, :5], x[:, 5:], y[:, 5:])


def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()


def meta_gradient(batch: lf.Task) -> lf.MAML:
    """learnfast's second-order MAML (2 inner steps of lr 0.05), its meta-gradient in ``.grad``."""
    algorithm = lf.MAML(model(), inner_lr=0.05, inner_steps=2, loss="mse", strategy="loop")
    algorithm.meta_loss(batch).loss.backward()
    return algorithm


def main(path: str) -> None:
    torch.set_num_threads(1)
    ranks = init_ranks(torch.device("cpu"))
    algorithm = meta_gradient(shard_tasks(fixed_batch(), ranks))
    average_gradients(list(algorithm.parameters()), ranks)
    if ranks.rank == 0:
        torch.save([p.grad for p in algorithm.parameters()], path)
    close_ranks()


if __name__ == "__main__":
    main(sys.argv[1])
    exit_rank(0)
