"""Caption parser benchmark: ours (`CaptionParser`) against the public rule-based peer
`sng_parser`, both on the same spaCy pipeline.

Speed: both parse the same captions in one run (LLaVA-style paragraphs generated from a seed, or
your own JSONL with --input), timed in interleaved chunks; captions/s of each and the ratio, for
ours in one process and in --n-process worker processes. In the same run, the limit: plain
`nlp.pipe` over the same pipeline with only the components the parser needs (tok2vec, tagger,
parser, attribute ruler, lemmatizer: all but `ner`), in one process and in --n-process workers
that return nothing; ours is printed as a fraction of it. Ours runs the networks through
`nlp.pipe` and the last two components through faster stand-ins, then its rules; the networks
alone (`nlp.pipe` without those two) are timed too, as the floor no parser on this pipeline
can beat. Accuracy: precision/recall/F1 per prior type of both on the labelled short captions,
the labelled paragraphs and the labelled real-style descriptions. Prints a table, then one JSON
line.

The peer runs as published (its own `spacy.load`, on thinc's BLIS); ours loads the same pipeline
on numpy's BLAS (`prior_extraction.nlp`). `--peer-numpy-blas` also times the peer loaded that way,
to show how much of the ratio the BLAS choice accounts for.

    .venv/bin/python benchmarks/parse_bench.py --captions 5000 --n-process 2
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import time
from collections.abc import Callable, Sequence
from itertools import islice
from pathlib import Path

from prior_extraction.caption_priors import ParsedCaption
from prior_extraction.parsing import BATCHES_PER_WORKER, CaptionParser
from prior_extraction.peer_parser import PeerParser
from prior_extraction.scoring import PRIOR_TYPES, load_labelled, score

REPOSITORY = Path(__file__).resolve().parents[1]
LABELLED_DIR = REPOSITORY / "tests" / "prior_extraction" / "data"
LABELLED = LABELLED_DIR / "labelled_captions.jsonl"
LABELLED_PARAGRAPHS = LABELLED_DIR / "labelled_paragraphs.jsonl"
LABELLED_REAL_STYLE = LABELLED_DIR / "labelled_realstyle.jsonl"

PEOPLE = ("man", "woman", "boy", "girl", "person", "child", "chef", "skier", "surfer", "player")
ANIMALS = ("dog", "cat", "horse", "elephant", "giraffe", "zebra", "cow", "sheep", "bird", "bear")
THINGS = (
    "table",
    "bench",
    "car",
    "bicycle",
    "umbrella",
    "kite",
    "surfboard",
    "laptop",
    "vase",
    "fire hydrant",
    "traffic light",
    "teddy bear",
    "pizza",
    "bowl",
    "chair",
    "couch",
    "bus",
    "train",
    "boat",
    "clock",
    "frisbee",
    "tennis racket",
    "backpack",
    "handbag",
    "suitcase",
)
PLACES = ("street", "beach", "park", "kitchen", "living room", "field", "river", "road", "snow")
WEARABLES = ("hat", "helmet", "jacket", "dress", "shirt", "scarf", "pair of sunglasses")
COLORS = ("red", "blue", "green", "white", "black", "brown", "yellow", "gray", "pink", "orange")
SIZES = ("small", "large", "tall", "little", "big", "long")
MATERIALS = ("wooden", "metal", "brick", "leather", "plastic", "glass", "stone")
STATES = ("calm", "busy", "empty", "wet", "shiny", "old", "parked", "open")
NUMBERS = ("two", "three", "four", "several", "many", "a few")
OPENERS = ("The image shows", "The image features", "The photo depicts", "In this picture, we see")
VERB_PREPS = (
    "sitting on",
    "standing next to",
    "lying on",
    "walking along",
    "leaning against",
    "standing in front of",
    "sitting on top of",
    "running across",
    "resting near",
)
ACTIONS = ("holding", "riding", "carrying", "watching", "pushing", "eating", "looking at")
PRONOUNS = {"man": "He", "boy": "He", "woman": "She", "girl": "She"}


def _described(rng: random.Random, noun: str) -> str:
    modifier = rng.choice((rng.choice(COLORS), rng.choice(SIZES), rng.choice(MATERIALS), ""))
    article = "an" if (modifier or noun)[0] in "aeiou" else "a"
    return f"{article} {modifier} {noun}".replace("  ", " ")


def _plural(noun: str) -> str:
    if noun in {"sheep", "person", "child", "snow"}:
        return {"person": "people", "child": "children"}.get(noun, noun)
    return noun + ("es" if noun.endswith(("s", "ch", "sh")) else "s")


def synthetic_caption(rng: random.Random) -> str:
    """One LLaVA-style paragraph: an opener, actions, attributes, a background, maybe a list."""
    agent = rng.choice(PEOPLE + ANIMALS)
    thing, place = rng.choice(THINGS), rng.choice(PLACES)
    sentences = [
        f"{rng.choice(OPENERS)} {_described(rng, agent)} {rng.choice(VERB_PREPS)} "
        f"{_described(rng, thing)} in the {place}.",
    ]
    pronoun = PRONOUNS.get(agent, "It")
    if agent in PEOPLE:
        sentences.append(
            f"{pronoun} is wearing {_described(rng, rng.choice(WEARABLES))} and "
            f"{rng.choice(ACTIONS)} {_described(rng, rng.choice(THINGS))}."
        )
    sentences.append(f"The {thing} is {rng.choice(COLORS)} and {rng.choice(STATES)}.")
    group = rng.choice(PEOPLE + ANIMALS)
    sentences.append(
        f"In the background, there are {rng.choice(NUMBERS)} {_plural(group)} "
        f"{rng.choice(VERB_PREPS)} the {rng.choice(THINGS)}."
    )
    if rng.random() < 0.3:
        sentences.append(
            f"A {rng.choice(SIZES)} {rng.choice(THINGS)} can be seen near the "
            f"{rng.choice(THINGS)}, surrounded by {rng.choice(_plural_things())}."
        )
    if rng.random() < 0.2:
        items = rng.sample(THINGS, 3)
        sentences.append(
            "\n".join(f"{i}. A {rng.choice(COLORS)} {item}" for i, item in enumerate(items, 1))
        )
    return " ".join(sentences)


def _plural_things() -> list[str]:
    return [_plural(noun) for noun in THINGS[:8]]


def load_captions(path: Path | None, count: int, seed: int) -> list[str]:
    """Captions from a JSONL file (`{"caption": ...}` lines), or `count` generated ones."""
    if path is None:
        rng = random.Random(seed)
        return [synthetic_caption(rng) for _ in range(count)]
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line)["caption"] for line in lines if line.strip()][:count]


PEER_ON_NUMPY_BLAS = "sng_parser (numpy BLAS)"
ParseMany = Callable[[Sequence[str]], list[ParsedCaption]]


class PipeLimit:
    """Plain `nlp.pipe` over a `CaptionParser`'s own pipeline and settings (BLAS threads, batch
    size), the docs thrown away: all the components the parser needs, or with `networks_only`
    just the ones it runs through `nlp.pipe`. With `n_process > 1`, worker processes of their
    own do the same and return only counts."""

    def __init__(
        self, parser: CaptionParser, n_process: int = 1, networks_only: bool = False
    ) -> None:
        self.parser = parser
        self.n_process = n_process
        self.networks_only = networks_only
        self._pool = None
        if n_process > 1:
            context = multiprocessing.get_context()
            settings = (parser.pipeline, parser.batch_size, networks_only)
            self._pool = context.Pool(n_process, _start_limit_worker, settings)

    def __call__(self, texts: Sequence[str]) -> list[ParsedCaption]:
        if self._pool is None:
            _pipe_only(self.parser, list(texts), self.networks_only)
        else:
            size = self.parser.batch_size
            batches = [list(texts[i : i + size]) for i in range(0, len(texts), size)]
            window = self.n_process * BATCHES_PER_WORKER
            iterator = iter(batches)
            while chunk := list(islice(iterator, window)):
                list(self._pool.imap(_pipe_in_worker, chunk))
        return []

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()


def _pipe_only(parser: CaptionParser, texts: list[str], networks_only: bool) -> int:
    disabled = parser.pipe_disabled_components() if networks_only else []
    count = 0
    with parser.blas_limit():
        for _ in parser.nlp.pipe(texts, batch_size=parser.batch_size, disable=disabled):
            count += 1
    return count


_limit_worker: tuple[CaptionParser, bool] | None = None


def _start_limit_worker(pipeline: str, batch_size: int, networks_only: bool) -> None:
    global _limit_worker
    _limit_worker = (CaptionParser(pipeline, batch_size=batch_size), networks_only)


def _pipe_in_worker(texts: list[str]) -> int:
    assert _limit_worker is not None, "limit worker started without its pipeline"
    parser, networks_only = _limit_worker
    return _pipe_only(parser, texts, networks_only)


def interleaved_throughput(
    parsers: dict[str, ParseMany], texts: list[str], chunk_size: int
) -> dict[str, float]:
    """Captions/s of each parser over all texts, timed chunk by chunk in turn, so that load
    from other processes on a shared machine falls on all parsers alike."""
    seconds = dict.fromkeys(parsers, 0.0)
    for start in range(0, len(texts), chunk_size):
        chunk = texts[start : start + chunk_size]
        for name, parse_many in parsers.items():
            began = time.perf_counter()
            parse_many(chunk)
            seconds[name] += time.perf_counter() - began
    return {name: len(texts) / elapsed for name, elapsed in seconds.items()}


def accuracy(parse_many: ParseMany, labelled_path: Path) -> dict[str, dict[str, float]]:
    """F1 etc. per prior type on a labelled set, overall and per split."""
    items = load_labelled(labelled_path)
    predicted = parse_many([item.caption for item in items])
    result = {"all": score(predicted, [item.gold for item in items])}
    for split in sorted({item.split for item in items}):
        chosen = [i for i, item in enumerate(items) if item.split == split]
        result[split] = score([predicted[i] for i in chosen], [items[i].gold for i in chosen])
    return {name: {k: s.to_dict() for k, s in scores.items()} for name, scores in result.items()}


def print_table(
    speed: dict[str, float],
    fractions: dict[str, float],
    of_networks: dict[str, float],
    scores: dict[str, dict],
) -> None:
    header = f"{'parser':<24}{'captions/s':>12}{'x sng_parser':>14}{'of limit':>10}"
    header += f"{'of networks':>13}"
    print(header + "".join(f"{'F1 ' + kind:>16}" for kind in PRIOR_TYPES))
    for name, rate in speed.items():
        fraction = f"{fractions[name]:>10.0%}" if name in fractions else " " * 10
        fraction += f"{of_networks[name]:>13.0%}" if name in of_networks else " " * 13
        line = f"{name:<24}{rate:>12.1f}{rate / speed['sng_parser']:>14.2f}{fraction}"
        if name.startswith(("limit", "networks")):
            print(line)
            continue
        accuracy_of = scores["sng_parser" if name.startswith("sng_parser") else "ours"]
        for labelled_set, figures in accuracy_of.items():
            f1s = "".join(f"{figures['all'][kind]['f1']:>16.3f}" for kind in PRIOR_TYPES)
            print(f"{line}{f1s}  ({labelled_set})")
            line = " " * len(line)


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--captions", type=int, default=5000, help="how many captions to time")
    options.add_argument("--input", type=Path, help="JSONL of real captions instead of generated")
    options.add_argument("--labelled", type=Path, default=LABELLED, help="labelled caption set")
    options.add_argument(
        "--labelled-paragraphs",
        type=Path,
        default=LABELLED_PARAGRAPHS,
        help="labelled multi-sentence descriptions",
    )
    options.add_argument(
        "--labelled-real-style",
        type=Path,
        default=LABELLED_REAL_STYLE,
        help="labelled real-style descriptions (longer, with clauses and located predicates)",
    )
    options.add_argument("--batch-size", type=int, default=64)
    options.add_argument("--n-process", type=int, default=2, help="worker processes for ours")
    options.add_argument("--chunk-size", type=int, default=2500, help="captions per timed turn")
    options.add_argument("--pipeline", help="spaCy pipeline for both parsers")
    options.add_argument(
        "--peer-numpy-blas",
        action="store_true",
        help="also time the peer with its pipeline on numpy's BLAS, as ours loads it",
    )
    options.add_argument("--seed", type=int, default=0)
    args = options.parse_args()

    texts = load_captions(args.input, args.captions, args.seed)
    peer = PeerParser(args.pipeline)
    ours = CaptionParser(args.pipeline, batch_size=args.batch_size)
    ours_parallel = CaptionParser(
        args.pipeline, batch_size=args.batch_size, n_process=args.n_process
    )
    # Warm up: workers started, caches of words seen filled, as in a long run.
    warm_up = texts[: args.n_process * args.batch_size]
    ours.parse_many(warm_up)
    ours_parallel.parse_many(warm_up)
    parallel_name = f"ours ({args.n_process} processes)"
    limits = {
        "ours (1 process)": ("limit (1 process)", PipeLimit(ours)),
        parallel_name: (f"limit ({args.n_process} processes)", PipeLimit(ours, args.n_process)),
    }
    floors = {
        "ours (1 process)": ("networks (1 process)", PipeLimit(ours, networks_only=True)),
        parallel_name: (
            f"networks ({args.n_process} processes)",
            PipeLimit(ours, args.n_process, networks_only=True),
        ),
    }
    parsers: dict[str, ParseMany] = {"sng_parser": peer.parse_many}
    for name, parse in (("ours (1 process)", ours), (parallel_name, ours_parallel)):
        parsers[name] = parse.parse_many
        for label, limit in (limits[name], floors[name]):
            limit(warm_up)
            parsers[label] = limit
    if args.peer_numpy_blas:
        parsers[PEER_ON_NUMPY_BLAS] = PeerParser(args.pipeline, numpy_blas=True).parse_many
    speed = interleaved_throughput(parsers, texts, args.chunk_size)
    ours_parallel.close()
    for _, limit in (*limits.values(), *floors.values()):
        limit.close()
    fractions = {name: speed[name] / speed[label] for name, (label, _) in limits.items()}
    of_networks = {name: speed[name] / speed[label] for name, (label, _) in floors.items()}
    labelled_sets = {
        "short": args.labelled,
        "paragraphs": args.labelled_paragraphs,
        "real-style": args.labelled_real_style,
    }
    scores = {
        name: {key: accuracy(parse.parse_many, path) for key, path in labelled_sets.items()}
        for name, parse in (("ours", ours), ("sng_parser", peer))
    }
    print_table(speed, fractions, of_networks, scores)
    print(
        json.dumps(
            {
                "captions": len(texts),
                "pipeline": ours.pipeline,
                "batch_size": args.batch_size,
                "n_process": args.n_process,
                "cpu_count": os.cpu_count(),
                "load_average_1min": round(os.getloadavg()[0], 2),
                "captions_per_s": {name: round(rate, 1) for name, rate in speed.items()},
                "speed_ratio_1_process": round(speed["ours (1 process)"] / speed["sng_parser"], 2),
                "speed_ratio": round(speed[parallel_name] / speed["sng_parser"], 2),
                "fraction_of_limit_1_process": round(fractions["ours (1 process)"], 3),
                "fraction_of_limit": round(fractions[parallel_name], 3),
                "fraction_of_networks_1_process": round(of_networks["ours (1 process)"], 3),
                "fraction_of_networks": round(of_networks[parallel_name], 3),
                "accuracy": scores,
            }
        )
    )


if __name__ == "__main__":
    main()
