"""Matching Networks.

Vinyals, Blundell, Lillicrap, Kavukcuoglu & Wierstra (2016). Matching Networks for One Shot Learning. NeurIPS.

A query is labelled by attention over the support set: a softmax over the cosine similarities
between the query's embedding and every support embedding weights the support items' one-hot
labels, a differentiable nearest neighbour trained end to end on episodes. With full context
embeddings (FCE, the paper's appendix) the embeddings see the whole support set: a bidirectional
LSTM re-reads the support embeddings (g), and an LSTM that attends over them for K steps refines
each query embedding (f).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..functional import cosine_similarity
from ..models.probe import like_model, output_shape
from ..tasks import Task, check_batch
from .base import Algorithm, MetaOutput, per_task, query_loss


def class_log_probs(log_attention: Tensor, support_y: Tensor, ways: int) -> Tensor:
    """``log P(c | query) = log sum_{i: y_i = c} a_i``: log-attention ``(B, Q, S)``, labels ``(B, S)`` -> ``(B, Q, ways)``.

    A masked logsumexp rather than ``log(attention @ onehot)``, so a sharp attention cannot underflow to log 0.
    """
    in_class = F.one_hot(support_y, ways).bool().unsqueeze(1)  # (B, 1, S, N)
    return log_attention.unsqueeze(-1).masked_fill(~in_class, -math.inf).logsumexp(dim=2)  # (B, Q, N)


class FullContextEmbedding(nn.Module):
    """Full context embeddings: support read by a bidirectional LSTM (g), queries by an attention LSTM (f).

    ``g(x_i, S) = g'(x_i) + h_i(forward) + h_i(backward)``, a bidirectional LSTM over the support sequence.
    ``f(x, S) = h_K`` with ``h_0 = f'(x)``, ``c_0 = 0`` and, for ``k = 1..K``::

        r_{k-1}  = sum_i softmax_i(h_{k-1} . g(x_i, S)) g(x_i, S)
        h_k, c_k = LSTM(f'(x), [h_{k-1}, r_{k-1}], c_{k-1});   h_k = h_k + f'(x)

    The paper's recurrent input ``[h, r]`` is an LSTM cell over the input ``[f'(x), r]`` with hidden
    state ``h``: the gates are linear in all three, so it is the same function with size-D states.

    Args:
        dim: embedding size D (both LSTMs keep it, so the skip connections add up).
        steps: K, the number of attention read steps for each query.

    Shapes: support ``(B, S, D)``, query ``(B, Q, D)`` -> ``(g, f)`` of the same shapes.
    """

    def __init__(self, dim: int, steps: int) -> None:
        super().__init__()
        self.steps = steps
        self.support_lstm = nn.LSTM(dim, dim, batch_first=True, bidirectional=True)
        self.query_lstm = nn.LSTMCell(2 * dim, dim)

    def forward(self, support_z: Tensor, query_z: Tensor) -> tuple[Tensor, Tensor]:
        b, q, d = query_z.shape
        both_ways, _ = self.support_lstm(support_z)  # (B, S, 2D); each task is its own sequence
        g = support_z + both_ways[..., :d] + both_ways[..., d:]  # (B, S, D)
        f = query_z.flatten(0, 1)  # (B*Q, D): every query reads its own task's support set
        h, c = f, torch.zeros_like(f)
        for _ in range(self.steps):  # a loop over read steps, not over tasks or samples
            attention = (h.view(b, q, d) @ g.transpose(1, 2)).softmax(-1)  # (B, Q, S)
            readout = (attention @ g).flatten(0, 1)  # (B*Q, D)
            h, c = self.query_lstm(torch.cat([f, readout], dim=-1), (h, c))
            h = h + f
        return g, h.view(b, q, d)


class MatchingNet(Algorithm):
    """Matching Networks: softmax attention over cosine similarities to the support set, optional FCE.

    Support and query items of a task go through the encoder together, one call per task, so
    BatchNorm statistics are per task: one encoder call per task (``per_task``).
    The FCE LSTMs run natively batched over tasks.

    Args:
        model: the embedding network ``(n, ...) -> (n, D)``; any trailing shape is flattened to D.
        scale: attention sharpness, softmax over ``scale * cosine``; 1 as in the paper, larger tends to
            1-nearest-neighbour by cosine similarity.
        fce: full context embeddings (the paper uses them on miniImageNet, not on Omniglot).
        fce_steps: K, attention read steps of the query LSTM (default 5; the paper leaves K open).
            Only with ``fce=True``: without FCE there is no query LSTM, and giving it is an error.
        in_shape: shape of one input item, used once (with ``fce`` only, else an error) to read D off
            ``model``; default ``(in_features,)`` for a first ``nn.Linear``, ``(in_channels, 28, 28)`` for a first ``nn.Conv2d``.

    Returns (forward): log-probabilities ``(B, Q, ways)``, the log of the attention mass on each class.
    ``log_softmax`` leaves them unchanged, so used as logits the cross-entropy loss is exactly the
    paper's negative log-likelihood, and ``argmax`` is the predicted class.

    Example:
        >>> matching = MatchingNet(Conv4())                 # 64-d embeddings at 28x28
        >>> matching.meta_loss(batch).loss.backward()        # batch: Task of (B, ...) tensors
    """

    needs_head = False
    freezable = True

    def __init__(
        self,
        model: nn.Module,
        scale: float = 1.0,
        fce: bool = False,
        fce_steps: int | None = None,
        in_shape: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__(loss="cross_entropy")
        if not scale > 0:
            raise ValueError(f"scale must be > 0 (it multiplies the cosine similarities), got {scale}")
        fce_only = [name for name, value in (("fce_steps", fce_steps), ("in_shape", in_shape)) if value is not None]
        if fce_only and not fce:
            names = " and ".join(fce_only)
            raise ValueError(f"{names} {'is a setting' if len(fce_only) == 1 else 'are settings'} of the full context "
                             f"embeddings (their LSTM sizes and read steps), which fce=False does not build; drop {names} or set fce=True")
        fce_steps = 5 if fce_steps is None else fce_steps
        if fce_steps < 1:
            raise ValueError(f"fce_steps must be >= 1 (attention read steps of the query LSTM), got {fce_steps}")
        self.model, self.scale = model, scale
        self.context: FullContextEmbedding | None = None
        if fce:
            dim = math.prod(output_shape(model, in_shape))
            self.context = like_model(FullContextEmbedding(dim, fce_steps), model)

    def attention_logits(self, batch: Task) -> Tensor:
        """``scale * cosine(f(query), g(support))`` ``(B, Q, S)``; its softmax over the last dim is the attention."""
        check_batch(batch)
        s = batch.support_x.shape[1]
        z = per_task(self.model, torch.cat([batch.support_x, batch.query_x], dim=1)).flatten(2)  # (B, S+Q, D)
        support_z, query_z = z[:, :s], z[:, s:]
        if self.context is not None:
            support_z, query_z = self.context(support_z, query_z)
        return self.scale * cosine_similarity(query_z, support_z)

    def forward(self, batch: Task) -> Tensor:
        log_attention = self.attention_logits(batch).log_softmax(-1)  # (B, Q, S)
        return class_log_probs(log_attention, batch.support_y, int(batch.support_y.max()) + 1)

    def meta_loss(self, batch: Task, generator: torch.Generator | None = None) -> MetaOutput:
        log_probs = self(batch)
        return MetaOutput(query_loss(self.loss_fn, log_probs, batch.query_y), log_probs.detach())
