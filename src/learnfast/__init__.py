"""learnfast: meta-learning for PyTorch on one task contract.

>>> import torch, learnfast as lf
>>> x, y = torch.randn(60, 1, 28, 28), torch.arange(10).repeat_interleave(6)    # 10 classes of 6 images
>>> sampler = lf.EpisodeSampler(x, y, lf.EpisodeSpec(ways=5, shots=1, queries=5))
>>> maml = lf.MAML(lf.Conv4(out_features=5, strided=True), inner_lr=0.4)
>>> maml.meta_loss(sampler.sample(4, torch.Generator().manual_seed(0))).loss.backward()
>>> maml.eval()(sampler.sample(2, torch.Generator().manual_seed(1))).shape    # (tasks, 5 ways * 5 queries, 5 ways)
torch.Size([2, 25, 5])
"""
from .api import evaluate, load, predict
from .algorithms import ALGORITHMS, ANIL, MAML, MANN, MTL, Algorithm, Baseline, MatchingNet, MetaNet, MetaOutput, MetaSGD, ProtoNet, RelationNet, Reptile, SiameseNet, TADAM
from .episodes import EpisodeSampler, EpisodeSpec
from .functional import forward_with, params_of, sgd_step
from .inner import InnerOptimizer, adam, adapt, sgd
from .models import MLP, Conv4, Conv4Maps
from .tasks import Task, cat_tasks, stack_tasks, task_at, unstack_tasks

__all__ = [
    "ALGORITHMS", "ANIL", "Algorithm", "Baseline", "Conv4", "Conv4Maps", "EpisodeSampler", "EpisodeSpec", "InnerOptimizer", "MAML", "MANN", "MLP", "MTL",
    "MatchingNet",
    "MetaNet", "MetaOutput", "MetaSGD", "ProtoNet", "RelationNet", "Reptile", "SiameseNet", "TADAM",
    "Task", "adam", "adapt", "evaluate", "load", "predict", "cat_tasks", "forward_with", "params_of", "sgd", "sgd_step", "stack_tasks", "task_at", "unstack_tasks",
]
__version__ = "0.1.0"
