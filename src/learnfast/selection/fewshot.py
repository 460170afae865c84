"""Few-shot strategy selection: task families from Omniglot alphabets, the zoo's algorithms as strategies.

Tasks: every alphabet of the ``vinyals`` test split (50 alphabets, 423 characters never seen in
meta-training, each with its rotated copies as further classes), in two families, 5-way 1-shot and
5-way 5-shot, every episode's classes from that one alphabet (``data.alphabets``), 5 queries per
class. A task's name is ``omniglot-test/ALPHABET/5w1s``; :func:`alphabet_of` is its group, so that
leave-one-alphabet-out holds both families of an alphabet out together.

Strategies (:data:`GRID`, 23): the zoo's Omniglot checkpoints, as trained, and for the gradient-based
ones a few test-time inner settings (learning rate, steps): MAML, first-order MAML and ANIL at
(steps, lr) in {(1, 0.4), (3, 0.4), (3, 0.2), (3, 0.8)}; Meta-SGD (learned rates) at 1 and 3 steps;
meta-transfer learning at lr 0.1 and 0.3 (10 steps); Baseline and Baseline++ as trained (lr 0.1, 100
steps); ProtoNet, Matching Networks, TADAM, Relation Network and Siamese as they are. Left out to
bound the cost on a CPU: Meta Networks (10x the time of ProtoNet per episode) and 10-step MAML.

Score: mean query accuracy over ``episodes`` fixed episodes per task (seeded by the task's name, the
same episodes for every strategy); cost: the seconds they took. Meta-features:
:class:`~.fewshot_metafeatures.FewShotFeaturizer` on the support sets of those episodes, under the
zoo ProtoNet's encoder and TADAM's task embedding. Run (resumable, pairs already in the KB are
skipped)::

    python -m learnfast.selection.fewshot --kb runs/selection/fewshot-kb.sqlite --episodes 6
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys
import time
from pathlib import Path

import torch
from torch import nn

from ..data import omniglot_split
from ..data.alphabets import alphabet_samplers
from ..episodes import EpisodeSampler, EpisodeSpec
from ..protocol import fixed_episodes
from ..train.build import to_float_image
from ..train.evaluate import evaluate
from ..train.restore import restore
from .fewshot_metafeatures import FewShotFeaturizer
from .kb import KnowledgeBase, Strategy

METRIC = "accuracy"
SPECS = {"5w1s": EpisodeSpec(5, 1, 5), "5w5s": EpisodeSpec(5, 5, 5)}
SOURCE = "omniglot-test"
ZOO_FILES = {
    "protonet": "protonet-omniglot", "matching": "matching-omniglot", "tadam": "tadam-omniglot", "metanet": "metanet-omniglot",
    "relation": "relation-omniglot", "siamese": "siamese-omniglot", "maml": "maml-omniglot-5w1s", "fomaml": "fomaml-omniglot-5w1s",
    "anil": "anil-omniglot-5w1s", "metasgd": "metasgd-omniglot-5w1s", "mtl": "mtl-omniglot-5w1s", "baseline": "baseline-omniglot",
    "baselinepp": "baselinepp-omniglot",
}
_MAML_SETTINGS = ((1, 0.4), (3, 0.4), (3, 0.2), (3, 0.8))
GRID: tuple[Strategy, ...] = (
    *(Strategy(name) for name in ("protonet", "matching", "tadam", "relation", "siamese")),
    *(Strategy(name, {"inner_steps": steps, "inner_lr": lr}) for name in ("maml", "fomaml", "anil") for steps, lr in _MAML_SETTINGS),
    *(Strategy("metasgd", {"inner_steps": steps}) for steps in (1, 3)),
    *(Strategy("mtl", {"inner_steps": 10, "inner_lr": lr}) for lr in (0.1, 0.3)),
    *(Strategy(name, {"inner_steps": 100, "inner_lr": 0.1}) for name in ("baseline", "baselinepp")),
)


def alphabet_of(task: str) -> str:
    """The group of a task name ``SOURCE/ALPHABET/FAMILY``: ``SOURCE/ALPHABET``."""
    return task.rsplit("/", 1)[0]


def task_seed(task: str) -> int:
    """A task's episode seed, from its name (stable across runs and machines)."""
    return int(hashlib.sha256(task.encode()).hexdigest()[:8], 16)


def task_families(data_root: str | Path | None = None, specs: dict[str, EpisodeSpec] = SPECS) -> dict[str, EpisodeSampler]:
    """``{task name: sampler}``: one family per (test alphabet, spec), alphabets in sorted order."""
    split = omniglot_split("vinyals", "test", data_root)
    families = {}
    for family, spec in specs.items():
        for alphabet, sampler in alphabet_samplers(split, spec, transform=to_float_image).items():
            families[f"{SOURCE}/{alphabet}/{family}"] = sampler
    return dict(sorted(families.items()))


class Learners:
    """The zoo's algorithms, loaded once each; :meth:`apply` sets a strategy's inner learning rate."""

    def __init__(self, zoo: str | Path) -> None:
        self.zoo, self.loaded = Path(zoo), {}

    def get(self, name: str) -> nn.Module:
        if name not in ZOO_FILES:
            raise ValueError(f"unknown few-shot strategy {name!r}; choose one of {sorted(ZOO_FILES)}")
        if name not in self.loaded:
            self.loaded[name] = restore(self.zoo / f"{ZOO_FILES[name]}.safetensors").algorithm
        return self.loaded[name]

    def apply(self, strategy: Strategy) -> tuple[nn.Module, int | None]:
        """The strategy's algorithm (inner lr set) and its test-time inner steps (None: the algorithm's own)."""
        unknown = set(strategy.params) - {"inner_steps", "inner_lr"}
        if unknown:
            raise ValueError(f"{strategy.key}: unknown setting(s) {sorted(unknown)}; a few-shot strategy sets inner_steps and inner_lr")
        algorithm = self.get(strategy.learner)
        if "inner_lr" in strategy.params:
            if strategy.learner == "metasgd" or not hasattr(algorithm, "inner_lr"):
                raise ValueError(f"{strategy.key}: {strategy.learner} has no single inner learning rate to set")
            algorithm.inner_lr = float(strategy.params["inner_lr"])
        return algorithm, strategy.params.get("inner_steps")


def build_featurizer(zoo: str | Path, data_root: str | Path | None = None, seed: int = 0,
                     reference_size: int = 100, images_per_class: int = 2, train_episodes: int = 20) -> FewShotFeaturizer:
    """The few-shot meta-features under the zoo ProtoNet's encoder and TADAM's task embedding, referred to
    the vinyals meta-training classes (``images_per_class`` images of each for its mean, ``reference_size``
    images as the fixed reference batch, ``train_episodes`` 5-way 1-shot episodes for the scales)."""
    zoo = Path(zoo)
    encoder = restore(zoo / f"{ZOO_FILES['protonet']}.safetensors").algorithm.model
    tadam = restore(zoo / f"{ZOO_FILES['tadam']}.safetensors").algorithm
    train = omniglot_split("vinyals", "train", data_root)
    generator = torch.Generator().manual_seed(seed)
    images, labels = torch.as_tensor(train.images), torch.as_tensor(train.labels).long()
    reference = to_float_image(images[torch.randperm(len(images), generator=generator)[:reference_size]])
    order = torch.argsort(labels, stable=True)
    first = torch.cat([order[labels[order] == c][:images_per_class] for c in labels.unique()])
    sampler = EpisodeSampler(images, labels, EpisodeSpec(5, 1, 1), transform=to_float_image)
    batch = sampler.sample(train_episodes, generator)
    with torch.no_grad():
        task_embedding = tadam.embed_task(batch).mean(0)
    featurizer = FewShotFeaturizer(encoder, tadam.embed_task, reference, torch.zeros(1, 1), 1.0, task_embedding)
    _, class_ids = labels[first].unique(return_inverse=True)
    means = featurizer.class_means(to_float_image(images[first]), class_ids, chunk=reference_size)
    featurizer = dataclasses.replace(featurizer, train_means=means)
    return dataclasses.replace(featurizer, train_prototype_distance=featurizer(batch)["prototype_distance"])


def run(kb_path: str | Path, zoo: str | Path = "zoo", episodes: int = 6, data_root: str | Path | None = None,
        strategies=GRID, limit: int | None = None, log=sys.stdout) -> int:
    """Scores every (task, strategy) pair missing from the KB; returns the number of results added."""
    families = task_families(data_root)
    learners, featurizer, added = Learners(zoo), None, 0
    with KnowledgeBase(kb_path) as kb:
        done, known = kb.completed(METRIC), kb.tasks()
        for name, sampler in list(families.items())[:limit]:
            todo = [s for s in strategies if (name, s.key) not in done]
            if not todo:
                continue
            seed = task_seed(name)
            features = known.get(name)
            if not features:
                featurizer = featurizer or build_featurizer(zoo, data_root)
                features = featurizer(next(iter(fixed_episodes(sampler, episodes, seed, episodes))))
            kb.add_task(name, features, SOURCE)
            start = time.perf_counter()
            for strategy in todo:
                algorithm, steps = learners.apply(strategy)
                began = time.perf_counter()
                result = evaluate(algorithm, sampler, METRIC, episodes, seed=seed, inner_steps=steps)
                kb.add_result(name, strategy, score=result.mean, seconds=time.perf_counter() - began, metric=METRIC,
                              folds_done=episodes, folds_total=episodes, cv_seed=seed,
                              info={"episode_scores": [round(v, 6) for v in result.values.tolist()]})
                added += 1
            print(f"{name}: {len(todo)} strategies in {time.perf_counter() - start:.1f} s", file=log, flush=True)
    return added


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score the zoo's few-shot strategies on Omniglot alphabet task families (resumable).")
    parser.add_argument("--kb", required=True, help="knowledge-base file (created if missing; pairs already in it are skipped)")
    parser.add_argument("--zoo", default="zoo", help="folder of the zoo checkpoints (default ./zoo)")
    parser.add_argument("--episodes", type=int, default=6, help="fixed episodes per (task, strategy) (default 6)")
    parser.add_argument("--limit", type=int, help="only the first N task families")
    parser.add_argument("--data-root", help="data folder (default: $LEARNFAST_DATA, ./data or ../shared/data)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    added = run(args.kb, args.zoo, args.episodes, args.data_root, limit=args.limit)
    print(f"added {added} results in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
