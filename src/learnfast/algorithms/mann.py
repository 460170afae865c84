"""Memory-Augmented Neural Networks (MANN) with least-recently-used access.

Santoro, Bartunov, Botvinick, Wierstra & Lillicrap (2016). Meta-Learning with Memory-Augmented
Neural Networks. ICML (arXiv: One-shot Learning with Memory-Augmented Neural Networks).

An LSTM controller reads an episode as a sequence: at step t it sees item x_t together with the
one-hot label of step t - 1 (zero at t = 0), so it must predict y_t before the label is shown,
and learns to bind each item to the label that arrives one step later. The binding lives in an
external memory, not in the weights: each read head emits a key that is written to memory with
least-recently-used access (LRUA), to the slot it read at the previous step or to the least-used
slot, mixed by a learned sigmoid gate; the least-used slot is cleared before the write; reads are
a softmax over cosine similarities between the key and every slot; usage decays by gamma per step
and grows with every read and write. The prediction at each step is a softmax layer over the
controller output and the read vectors. Across episodes, labels are shuffled, so only the
strategy "store, then retrieve by similarity" carries over.

On the Task contract: the *support set* is the paper's sequence, shown in a pseudo-random time
order (see :func:`hashed_order`), each label one step late; then every *query* item is predicted
as the next step after the whole support sequence, each from its own copy of the final state, so
query labels are never read and queries do not see each other. Omniglot with ``ways=5, shots=10``
is the paper's episode: 50 items, 10 instances per class. ``forward`` returns the query logits
for the standard evaluator; :meth:`MANN.sequence` returns the per-step predictions with each
step's instance number for the paper's per-instance table (:func:`instance_accuracy`).
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..functional import cosine_similarity
from ..models.probe import like_model, output_shape
from ..protocol import fixed_episodes
from ..tasks import Task, check_batch
from .base import Algorithm, MetaOutput, per_task

PAPER_INSTANCES = (1, 2, 3, 4, 5, 10)  # columns of the paper's per-instance accuracy table
ORDERS = ("hash", "given")
READ_ADDRESSES = ("after-write", "before-write")
MEMORY_INIT = 1e-6  # as in the reference implementations: no slot is an exact zero vector at the start
_MASK31 = (1 << 31) - 1
_MASK20 = (1 << 20) - 1


# -- time order of the support sequence ----------------------------------------------------------
def _mix(v: Tensor) -> Tensor:
    """A 31-bit integer hash (xor-shift / multiply rounds): int64 values in ``[0, 2^31)`` -> ``[0, 2^31)``.

    Every product stays below 2^62, so no step overflows int64.
    """
    for multiplier in (0x2C1B3C6D, 0x297A2D39):
        v = v ^ (v >> 15)
        v = (v * multiplier) & _MASK31
    return v ^ (v >> 15)


def hashed_order(items: Tensor) -> Tensor:
    """A pseudo-random time order of each task's items, a function of that task's inputs alone.

    Each input is quantised (to 1/4096) and hashed with exact integer arithmetic, so a task gets the
    same order alone or in any batch, on any device; different tasks get unrelated orders; no
    global random state is read, and labels are never read: the class-major layout of a sampled
    support set becomes a label sequence that time does not predict.

    Args:
        items: ``(B, S, ...)`` support inputs.

    Returns: ``(B, S)`` int64, a permutation of ``0..S-1`` per task: step t shows item ``order[:, t]``.
    """
    b, s = items.shape[:2]
    flat = items.reshape(b, s, -1).detach().double().clamp(-(2.0**40), 2.0**40)
    quantised = torch.round(flat * 4096).long() & _MASK20  # (B, S, F), exact
    weights = (_mix(torch.arange(1, flat.shape[-1] + 1, device=items.device)) & _MASK20) | 1  # (F,), odd: no feature ignored
    item_hash = (quantised * weights).sum(-1)  # (B, S), exact int64: each term < 2^40
    item_hash = _mix((item_hash ^ (item_hash >> 31)) & _MASK31)
    task_hash = item_hash.sum(1, keepdim=True) & _MASK31  # (B, 1), independent of item order
    keys = _mix(task_hash ^ _mix(torch.arange(1, s + 1, device=items.device)))  # (B, S)
    return keys.argsort(dim=1, stable=True)


def instance_numbers(labels: Tensor) -> Tensor:
    """Which instance of its class each step shows: ``1 + `` earlier steps with the same label.

    ``(B, T)`` labels in time order -> ``(B, T)`` int64; e.g. ``[2, 0, 2, 2, 0] -> [1, 1, 2, 3, 2]``.
    """
    seen = F.one_hot(labels, int(labels.max()) + 1).cumsum(1)  # (B, T, N): counts up to and including t
    return seen.gather(2, labels.unsqueeze(-1)).squeeze(-1)


# -- least-recently-used access: pure functions on batched memory ------------------------------
class MemoryState(NamedTuple):
    """The recurrent state between steps; every field has a leading batch dimension B."""

    memory: Tensor  # (B, slots, width)
    read_weights: Tensor  # (B, heads, slots), w^r_{t-1}
    usage: Tensor  # (B, slots), w^u_{t-1}
    reads: Tensor  # (B, heads * width), r_{t-1}
    hidden: Tensor  # (B, controller) LSTM h
    cell: Tensor  # (B, controller) LSTM c


def least_used(usage: Tensor, count: int) -> Tensor:
    """Indices ``(B, count)`` of the ``count`` least-used slots of ``usage (B, slots)``, least used first; ties by slot index."""
    return usage.argsort(dim=-1, stable=True)[:, :count]


def lrua_write(memory: Tensor, written: Tensor, gates: Tensor, prev_read_weights: Tensor, prev_usage: Tensor) -> tuple[Tensor, Tensor]:
    """One LRUA write: ``w^w = sigma * w^r_{t-1} + (1 - sigma) * w^lu_{t-1}``, then ``M += w^w^T k``.

    ``k`` (``written``) is each head's key (the paper) or its separate add vector (``MANN(add_vector=True)``).

    Head r's least-used weighting is one-hot at the r-th least-used slot (the paper uses as many
    least-used slots as reads). The single least-used slot is set to zero before the write.

    Args:
        memory: ``(B, slots, width)`` before the step.
        written: ``(B, heads, width)`` written by each head.
        gates: ``(B, heads, 1)`` sigmoid gates sigma in (0, 1).
        prev_read_weights: ``(B, heads, slots)``.
        prev_usage: ``(B, slots)``.

    Returns: the new memory ``(B, slots, width)`` and the write weights ``(B, heads, slots)``.
    """
    slots = memory.shape[1]
    lru = least_used(prev_usage, written.shape[1])  # (B, heads)
    least_used_weights = F.one_hot(lru, slots).to(memory.dtype)  # (B, heads, slots)
    write_weights = gates * prev_read_weights + (1 - gates) * least_used_weights
    keep = 1 - F.one_hot(lru[:, 0], slots).to(memory.dtype)  # (B, slots): clear the least-used slot
    return memory * keep.unsqueeze(-1) + write_weights.transpose(1, 2) @ written, write_weights


def lrua_read(memory: Tensor, keys: Tensor, strength: Tensor | None = None, addressed: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Content read: ``w^r = softmax_i (beta * cos(k, A_i))``, ``r = w^r M``.

    ``(B, slots, width)``, ``(B, heads, width)`` and optional key strengths ``beta (B, heads, 1)``
    (the paper: none, i.e. 1) -> weights ``(B, heads, slots)``, reads ``(B, heads, width)``. The keys
    are compared with ``addressed`` (``(B, slots, width)``, default ``memory``: ``A = M``).
    """
    similarity = cosine_similarity(keys, memory if addressed is None else addressed)
    read_weights = (similarity if strength is None else strength * similarity).softmax(-1)
    return read_weights, read_weights @ memory


def usage_update(prev_usage: Tensor, read_weights: Tensor, write_weights: Tensor, gamma: float) -> Tensor:
    """``w^u_t = gamma * w^u_{t-1} + sum_heads (w^r_t + w^w_t)``: ``(B, slots)``."""
    return gamma * prev_usage + read_weights.sum(1) + write_weights.sum(1)


class SequenceOutput(NamedTuple):
    """Per-step predictions over the support sequence, in time order."""

    logits: Tensor  # (B, S, N): prediction at step t, made before label t is shown
    labels: Tensor  # (B, S): the label of step t
    instances: Tensor  # (B, S): which instance of its class step t shows (1 = first)
    order: Tensor  # (B, S): step t shows support item order[:, t]


class MANN(Algorithm):
    """Memory-Augmented Neural Network: LSTM controller, external memory with LRU access.

    Items go through ``model`` (the image encoder) together, one call per task (BatchNorm
    statistics per task, ``per_task``); the recurrence then runs batched over tasks, one
    Python step per time step (inherently sequential), with memory ``(B, slots, width)``.

    Args:
        model: the item encoder ``(n, ...) -> (n, D)`` (any trailing shape is flattened to D);
            ``nn.Flatten()`` with ``in_shape`` gives the paper's raw-pixel input.
        ways: size of the one-hot label input and of the output layer; a task may have fewer classes
            (its logits are the first ones), not more (paper: 5).
        controller_size: LSTM units (paper: 200).
        memory_slots: memory rows (paper: 128).
        memory_width: memory columns, the key size (paper: 40).
        read_heads: read heads, each with its own key, gate and least-used slot (paper: 4).
        gamma: usage decay per step (paper: 0.95).
        key_strength: also emit a read strength ``beta = 1 + softplus(.)`` per head that sharpens the
            read softmax, ``softmax(beta * cos)``, as the NTM's content addressing (Graves et al. 2014)
            does. The paper's LRUA has none (``False``): its reads are a softmax over cosines in
            [-1, 1], at most e^2 times sharper than uniform over all slots.
        add_vector: each head also emits an add vector ``a = tanh(.)`` that is written in place of its
            key, as the NTM's write head (Graves et al. 2014) and the "separate" option of public MANN
            implementations. The paper (``False``) writes the read key itself: the key of step t must
            both find items like x_t (read) and store what binds x_{t-1} to its label (write).
        read_address: which memory the read keys are compared with. ``"after-write"``: ``M_t``, the
            memory after this step's write, the paper's equations read literally; the slot just
            written holds the key itself (cosine 1), so it wins every sharp read. ``"before-write"``:
            ``M_{t-1}``, as public reference implementations do; the read vector is taken from
            ``M_t`` either way.
        initial_strength: with ``key_strength``, the read strength every head starts at (the strength
            outputs' bias is set so that ``beta = initial_strength`` when the controller's output is
            zero); ``None`` keeps PyTorch's default bias (``beta`` about ``1 + log 2``).
        order: ``"hash"`` shows the support set in a pseudo-random order derived from the task
            (:func:`hashed_order`; the sampler's support is class-major, which would make the label
            sequence predictable); ``"given"`` keeps the support order as it is (for sources whose
            support is already a shuffled sequence, and for tests).
        in_shape: shape of one input item, used once to read D off ``model``; default
            ``(in_features,)`` for a first ``nn.Linear``, ``(in_channels, 28, 28)`` for a first ``nn.Conv2d``.

    Returns (forward): query logits ``(B, Q, N)``, N = ``support_y.max() + 1``; ``meta_loss`` is the
    cross-entropy over every support step and every query, as the paper's loss over every step.

    Example:
        >>> mann = MANN(Conv4(), ways=5)                      # Conv4 item encoder, 64-d
        >>> mann.meta_loss(batch).loss.backward()             # batch: 5-way 10-shot Task of (B, ...) tensors
        >>> out = mann.sequence(batch)                        # per-step logits and instance numbers
    """

    needs_head = False
    freezable = True

    def __init__(
        self,
        model: nn.Module,
        ways: int = 5,
        controller_size: int = 200,
        memory_slots: int = 128,
        memory_width: int = 40,
        read_heads: int = 4,
        gamma: float = 0.95,
        key_strength: bool = False,
        add_vector: bool = False,
        initial_strength: float | None = None,
        read_address: str = "after-write",
        order: str = "hash",
        in_shape: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__(loss="cross_entropy")
        for name, value in (("ways", ways), ("controller_size", controller_size), ("memory_slots", memory_slots),
                            ("memory_width", memory_width), ("read_heads", read_heads)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if read_heads > memory_slots:
            raise ValueError(f"read_heads={read_heads} needs at least as many memory slots (each head writes to its own least-used slot); got memory_slots={memory_slots}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma is the usage decay per step and must lie in [0, 1], got {gamma}")
        if order not in ORDERS:
            raise ValueError(f"unknown order {order!r}; choose one of {ORDERS}")
        if read_address not in READ_ADDRESSES:
            raise ValueError(f"unknown read_address {read_address!r}; choose one of {READ_ADDRESSES}")
        if initial_strength is not None and not key_strength:
            raise ValueError("initial_strength sets where the learned read strength starts; it needs key_strength=True")
        if initial_strength is not None and not initial_strength > 1.0:
            raise ValueError(f"initial_strength must be above 1 (beta = 1 + softplus(.) > 1), got {initial_strength}")
        self.model, self.ways, self.gamma, self.order, self.read_address = model, ways, gamma, order, read_address
        self.slots, self.width, self.heads, self.key_strength = memory_slots, memory_width, read_heads, key_strength
        self.add_vector = add_vector
        dim = math.prod(output_shape(model, in_shape))
        # controller input: [item embedding, previous label, previous reads] (reads feed the next state, p. 3)
        self.controller = like_model(nn.LSTMCell(dim + ways + read_heads * memory_width, controller_size), model)
        # per head: key, (optionally) add vector, gate, (optionally) strength
        per_head = memory_width * (2 if add_vector else 1) + (2 if key_strength else 1)
        self.addressing = like_model(nn.Linear(controller_size, read_heads * per_head), model)
        if initial_strength is not None:  # softplus(b) = initial_strength - 1 for the strength outputs
            with torch.no_grad():
                self.addressing.bias.view(read_heads, per_head)[:, -1] = math.log(math.expm1(initial_strength - 1))
        self.output = like_model(nn.Linear(controller_size + read_heads * memory_width, ways), model)

    def initial_state(self, batch_size: int, like: Tensor) -> MemoryState:
        """Empty memory (every entry ``MEMORY_INIT``), zero usage, read weights, reads and LSTM state."""
        zeros = lambda *shape: like.new_zeros(batch_size, *shape)
        hidden = self.controller.hidden_size
        return MemoryState(zeros(self.slots, self.width) + MEMORY_INIT, zeros(self.heads, self.slots), zeros(self.slots),
                           zeros(self.heads * self.width), zeros(hidden), zeros(hidden))

    def step(self, state: MemoryState, item_z: Tensor, prev_label: Tensor) -> tuple[MemoryState, Tensor]:
        """One time step for B sequences: item embeddings ``(B, D)``, previous one-hot labels ``(B, ways)`` -> new state, logits ``(B, ways)``."""
        b = item_z.shape[0]
        hidden, cell = self.controller(torch.cat([item_z, prev_label, state.reads], dim=-1), (state.hidden, state.cell))
        head = self.addressing(hidden).view(b, self.heads, -1)
        keys = head[..., : self.width].tanh()  # (B, R, W)
        written = head[..., self.width : 2 * self.width].tanh() if self.add_vector else keys  # (B, R, W)
        rest = head[..., (2 if self.add_vector else 1) * self.width :]
        gates = rest[..., :1].sigmoid()  # (B, R, 1)
        strength = 1 + F.softplus(rest[..., 1:]) if self.key_strength else None  # (B, R, 1)
        memory, write_weights = lrua_write(state.memory, written, gates, state.read_weights, state.usage)
        addressed = state.memory if self.read_address == "before-write" else None  # M_{t-1} or M_t
        read_weights, reads = lrua_read(memory, keys, strength, addressed)  # the read vector comes from M_t
        usage = usage_update(state.usage, read_weights, write_weights, self.gamma)
        reads = reads.flatten(1)  # (B, R*W)
        logits = self.output(torch.cat([hidden, reads], dim=-1))
        return MemoryState(memory, read_weights, usage, reads, hidden, cell), logits

    def _run(self, batch: Task) -> tuple[SequenceOutput, Tensor]:
        """The support sequence step by step, then every query as the next step: per-step output and query logits ``(B, Q, N)``."""
        check_batch(batch)
        ways = int(batch.support_y.max()) + 1
        if ways > self.ways:
            raise ValueError(
                f"this task has {ways} classes but MANN was built for at most ways={self.ways} (the size of its label "
                f"input and output layer); build it with ways={ways} (config: [algorithm] ways = {ways})"
            )
        b, s, q = batch.support_x.shape[0], batch.support_x.shape[1], batch.query_x.shape[1]
        z = per_task(self.model, torch.cat([batch.support_x, batch.query_x], dim=1)).flatten(2)  # (B, S+Q, D)
        if self.order == "hash":
            order = hashed_order(batch.support_x)
        else:
            order = torch.arange(s, device=z.device).expand(b, s)
        support_z = z[:, :s].gather(1, order.unsqueeze(-1).expand(b, s, z.shape[-1]))  # (B, S, D), time order
        labels = batch.support_y.gather(1, order)  # (B, S)
        onehot = F.one_hot(labels, self.ways).to(z.dtype)  # (B, S, ways)
        shown = torch.cat([torch.zeros_like(onehot[:, :1]), onehot[:, :-1]], dim=1)  # label t is shown at step t+1

        state = self.initial_state(b, z)
        logits = []
        for t in range(s):  # over time steps: sequential by nature; every step is batched over tasks
            state, step_logits = self.step(state, support_z[:, t], shown[:, t])
            logits.append(step_logits)
        # Each query is step S+1 from its own copy of the final state (which has seen label S), so no
        # query label is read and queries do not see one another.
        copies = MemoryState(*(field.repeat_interleave(q, dim=0) for field in state))  # (B*Q, ...)
        _, query_logits = self.step(copies, z[:, s:].flatten(0, 1), onehot[:, -1].repeat_interleave(q, dim=0))
        sequence = SequenceOutput(torch.stack(logits, dim=1)[..., :ways], labels, instance_numbers(labels), order)
        return sequence, query_logits.view(b, q, self.ways)[..., :ways]

    def sequence(self, batch: Task) -> SequenceOutput:
        """Predictions at every step of the support sequence, the step labels and instance numbers (all ``(B, S, ...)``)."""
        return self._run(batch)[0]

    def forward(self, batch: Task) -> Tensor:
        return self._run(batch)[1]

    def meta_loss(self, batch: Task, generator: torch.Generator | None = None) -> MetaOutput:
        sequence, query_logits = self._run(batch)
        logits = torch.cat([sequence.logits, query_logits], dim=1)  # (B, S+Q, N)
        targets = torch.cat([sequence.labels, batch.query_y], dim=1)
        return MetaOutput(self.loss_fn(logits.flatten(0, 1), targets.flatten()), query_logits.detach())

    def extra_report(self, source, episodes: int, seed: int) -> dict[str, Any]:
        """The paper's per-instance table on the evaluated episodes: ``{"instance_accuracy": {"1": acc, ...}}``.

        Columns are the paper's instances that fit the source's shots (``source.spec.shots``);
        accuracies in [0, 1], keyed by the instance number as a string (:func:`instance_accuracy`).
        """
        spec = getattr(source, "spec", None)
        if spec is None:
            raise TypeError(f"MANN's per-instance table needs a source with .spec.shots (an EpisodeSampler); got {type(source).__name__}")
        wanted = [k for k in PAPER_INSTANCES if k <= spec.shots]
        table = instance_accuracy(self, source, episodes, seed, instances=wanted)
        return {"instance_accuracy": {str(k): v for k, v in table.items()}}


def instance_accuracy(
    algorithm: MANN,
    source,
    episodes: int,
    seed: int = 0,
    instances: Sequence[int] = PAPER_INSTANCES,
    batch_size: int = 20,
) -> dict[int, float]:
    """The paper's table: accuracy at the k-th instance of a class along the support sequences.

    Runs ``algorithm.sequence`` (eval mode, no gradients) on the same fixed, seeded episodes as
    :func:`learnfast.train.evaluate.evaluate` and pools, for each k, every step that shows the k-th
    instance of its class.

    Args:
        algorithm: a :class:`MANN`.
        source: a task source; its ``shots`` must be at least ``max(instances)`` (paper: ways=5, shots=10).
        episodes: number of fixed episodes; ``seed``: which fixed set.
        instances: instance numbers to report (1 = first time a class is shown).
        batch_size: episodes per call.

    Returns: ``{k: accuracy in [0, 1]}`` for each k in ``instances``.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if not instances or min(instances) < 1:
        raise ValueError(f"instances are 1-based instance numbers, got {tuple(instances)}")
    top = max(instances)
    device = next(algorithm.parameters()).device
    correct = torch.zeros(top + 1, dtype=torch.float64)
    count = torch.zeros(top + 1, dtype=torch.float64)
    was_training = algorithm.training
    algorithm.eval()
    try:
        with torch.no_grad():
            for batch in fixed_episodes(source, episodes, seed, batch_size):
                out = algorithm.sequence(batch.to(device))
                hit = (out.logits.argmax(-1) == out.labels).double().flatten().cpu()
                index = out.instances.flatten().clamp(max=top + 1).cpu()
                correct += torch.bincount(index, weights=hit, minlength=top + 2)[: top + 1]
                count += torch.bincount(index, minlength=top + 2)[: top + 1].double()
    finally:
        algorithm.train(was_training)
    missing = [k for k in instances if count[k] == 0]
    if missing:
        raise ValueError(
            f"no step shows instance {missing} of a class: the support sequences are too short; sample the "
            f"source with shots >= {max(missing)} per class (the paper: ways=5, shots=10)"
        )
    return {int(k): (correct[k] / count[k]).item() for k in instances}
