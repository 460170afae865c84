"""Meta Networks: fast weights generated from loss gradients, in one forward pass.

Munkhdalai & Yu (2017). Meta Networks. ICML. (The hypernetwork view: Ha, Dai & Le (2017),
HyperNetworks, ICLR; weight imprinting: Qi, Brown & Lowe (2018), Low-Shot Learning with Imprinted
Weights, CVPR.)

A meta-learner writes the weights of a task-specific classifier instead of training it. Each
support example's *meta-information*, the gradient of a base learner's loss on that one example,
is mapped by a learned generator to example-level *fast weights*, stored in a memory indexed by the
example's embedding. A query attends over that index (softmax of cosine similarities), reads the
matching mixture of fast weights, and is classified by the base learner running slow and fast
weights side by side ("layer augmentation": each layer's slow and fast outputs, after the ReLU,
are summed). The gradients come from ``torch.func.grad`` on the support loss; nothing is
optimised at test time: one forward pass, no inner loop.

What this variant keeps and changes (``MetaNet``'s docstring gives the equations):

- kept: slow weights shared across tasks (embedding, base learner trunk, generator); per-example
  loss gradients as meta-information; a learned gradient -> fast-weight generator; a memory of
  example-level fast weights keyed by support embeddings and read by cosine-softmax attention;
  layer augmentation of the base learner.
- changed: the base learner is a one-hidden-layer network on the embedding (the paper's is a
  second CNN on pixels); its output weights start from the class means of the support features
  (imprinting) rather than slow per-class weights, so the classifier is equivariant to how
  classes are numbered and takes any number of ways; the generator reads each gradient coordinate
  with a small MLP shared across coordinates, one MLP per base-learner tensor; the attention has a
  learned scale (initialised at 1, the paper's plain softmax).
- left out: the task-level fast weights of the embedding (the paper's Q* from the generator m and
  a representation loss), and the continual-learning experiments.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import grad, vmap

from .._types import Params
from ..functional import cosine_similarity, prototypes
from ..models.probe import like_model, output_shape
from ..tasks import Task, check_batch
from .base import Algorithm, MetaOutput, per_task, query_loss


def base_features(slow: Params, z: Tensor) -> Tensor:
    """The base learner's slow hidden layer ``relu(W z + b)``: ``(..., D) -> (..., H)``."""
    return F.relu(F.linear(z, slow["weight"], slow["bias"]))


def example_loss(slow: Params, classes: Tensor, z: Tensor, y: Tensor) -> Tensor:
    """The base learner's loss on one support example: ``z (D,)``, label ``y ()``, output weights ``classes (N, H)``."""
    return F.cross_entropy(classes @ base_features(slow, z), y)


def meta_information(slow: Params, classes: Tensor, support_z: Tensor, support_y: Tensor) -> tuple[Params, Tensor]:
    """Per-example loss gradients w.r.t. the base learner's slow hidden layer and output weights.

    Args:
        slow: ``{"weight": (H, D), "bias": (H,)}`` shared by every task.
        classes: ``(B, N, H)`` output weights of each task.
        support_z: ``(B, S, D)``; ``support_y``: ``(B, S)``.

    Returns: ``({"weight": (B, S, H, D), "bias": (B, S, H)}, (B, S, N, H))``, differentiable in every input
    (so the meta-gradient flows through them, second order).
    """
    per_example = vmap(grad(example_loss, argnums=(0, 1)), in_dims=(None, None, 0, 0))  # over a task's examples
    return vmap(per_example, in_dims=(None, 0, 0, 0))(slow, classes, support_z, support_y)  # over tasks


def coordinate_mlp(hidden: int, out_bias: bool = True) -> nn.Sequential:
    """``(..., 1) -> (..., 1)``: the same small MLP applied to every gradient coordinate."""
    return nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1, bias=out_bias))


class MetaNet(Algorithm):
    """Meta Networks (gradient meta-information, imprinted output weights): fast weights in one pass.

    For a task with support embeddings ``z_i = u(x_i)``, labels ``y_i`` and N classes:

    - slow base learner: ``phi(z) = relu(W z + b)``; output weights ``C = `` class means of ``phi`` over the support;
    - meta-information: ``g_i = grad_{W, b, C} CE(C phi(z_i), y_i)``, one gradient per support example (``torch.func``);
    - fast weights: ``(W*_i, b*_i, C*_i) = d(g_i)``, ``d`` applied coordinate by coordinate, one MLP per tensor;
    - query z: ``a_i = softmax_i(s * cos(z, z_i))``, ``(W*, b*, C*) = sum_i a_i (W*_i, b*_i, C*_i)``;
    - logits: ``(C + C*) (relu(W z + b) + relu(W* z + b*))``, slow and fast paths summed after the ReLU.

    Relabelling the classes permutes ``C``, the gradients w.r.t. ``C`` and so the logits; nothing else
    depends on the class numbering. Support and query items go through ``model`` together, one
    call per task (BatchNorm statistics per task, ``per_task``); everything after it is
    batched over tasks.

    Args:
        model: the embedding network ``u``: ``(n, ...) -> (n, D)`` (any trailing shape is flattened to D).
        base_hidden: H, units of the base learner's hidden layer.
        generator_hidden: hidden units of each coordinate-wise generator MLP (1 -> hidden -> hidden -> 1, ReLU).
        attention_scale: initial scale s of the cosine similarities in the attention (learned; 1 = the paper's softmax).
        in_shape: shape of one input item, used once to read D off ``model``; default
            ``(in_features,)`` for a first ``nn.Linear``, ``(in_channels, 28, 28)`` for a first ``nn.Conv2d``.

    Returns (forward): logits ``(B, Q, N)``, N = ``support_y.max() + 1``.

    Example:
        >>> metanet = MetaNet(Conv4())                      # 64-d embeddings at 28x28
        >>> metanet.meta_loss(batch).loss.backward()         # batch: Task of (B, ...) tensors
    """

    needs_head = False
    freezable = True

    def __init__(
        self,
        model: nn.Module,
        base_hidden: int = 64,
        generator_hidden: int = 20,
        attention_scale: float = 1.0,
        in_shape: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__(loss="cross_entropy")
        for name, value in (("base_hidden", base_hidden), ("generator_hidden", generator_hidden)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not attention_scale > 0:
            raise ValueError(f"attention_scale must be > 0 (it multiplies the cosine similarities), got {attention_scale}")
        self.model = model
        dim = math.prod(output_shape(model, in_shape))
        self.base = like_model(nn.Linear(dim, base_hidden), model)  # slow hidden layer W, b of the base learner
        self.generators = like_model(nn.ModuleDict({
            "weight": coordinate_mlp(generator_hidden),
            "bias": coordinate_mlp(generator_hidden),
            # no output bias: it would add one constant to every class's weights, which the softmax ignores
            "classes": coordinate_mlp(generator_hidden, out_bias=False),
        }), model)
        self.log_scale = nn.Parameter(self.base.weight.new_tensor(math.log(attention_scale)))

    def fast_weights(self, gradients: Tensor, name: str) -> Tensor:
        """``d``: every coordinate of ``gradients`` through the generator for tensor ``name``; same shape out."""
        return self.generators[name](gradients.unsqueeze(-1)).squeeze(-1)

    def forward(self, batch: Task) -> Tensor:
        check_batch(batch)
        ways = int(batch.support_y.max()) + 1
        s = batch.support_x.shape[1]
        z = per_task(self.model, torch.cat([batch.support_x, batch.query_x], dim=1)).flatten(2)  # (B, S+Q, D)
        support_z, query_z = z[:, :s], z[:, s:]
        slow = {"weight": self.base.weight, "bias": self.base.bias}

        # meta-information -> example-level fast weights, stored per support example
        classes = prototypes(base_features(slow, support_z), batch.support_y, ways)  # (B, N, H)
        grads, class_grads = meta_information(slow, classes, support_z, batch.support_y)
        fast_weight = self.fast_weights(grads["weight"], "weight")  # (B, S, H, D)
        fast_bias = self.fast_weights(grads["bias"], "bias")  # (B, S, H)
        fast_classes = self.fast_weights(class_grads, "classes")  # (B, S, N, H)

        # each query reads its mixture of fast weights, indexed by the support embeddings
        attention = (self.log_scale.exp() * cosine_similarity(query_z, support_z)).softmax(-1)  # (B, Q, S)
        fast_pre = torch.einsum("bqs,bshd,bqd->bqh", attention, fast_weight, query_z) + attention @ fast_bias  # (B, Q, H)
        features = base_features(slow, query_z) + F.relu(fast_pre)  # layer augmentation, (B, Q, H)
        imprinted = features @ classes.transpose(1, 2)  # (B, Q, N): the imprinted output weights
        return imprinted + torch.einsum("bqs,bsnh,bqh->bqn", attention, fast_classes, features)

    def meta_loss(self, batch: Task, generator: torch.Generator | None = None) -> MetaOutput:
        logits = self(batch)
        return MetaOutput(query_loss(self.loss_fn, logits, batch.query_y), logits.detach())
