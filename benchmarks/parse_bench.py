"""Caption parser benchmark: ours (`CaptionParser`) against the public rule-based peer
`sng_parser`, both on the same spaCy pipeline.

Speed: both parse the same captions in one run (LLaVA-style paragraphs generated from a seed, or
your own JSONL with --input); captions/s of each and the ratio. Accuracy: precision/recall/F1 per
prior type of both on the labelled caption set. Prints a table, then one JSON line.

    .venv/bin/python benchmarks/parse_bench.py --captions 5000 --n-process 2
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from prior_extraction.caption_priors import ParsedCaption
from prior_extraction.parsing import CaptionParser
from prior_extraction.peer_parser import PeerParser
from prior_extraction.scoring import PRIOR_TYPES, load_labelled, score

REPOSITORY = Path(__file__).resolve().parents[1]
LABELLED = REPOSITORY / "tests" / "prior_extraction" / "data" / "labelled_captions.jsonl"

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


ParseMany = Callable[[Sequence[str]], list[ParsedCaption]]


def throughput(parse_many: ParseMany, texts: list[str]) -> float:
    """Captions per second of one full pass over texts."""
    start = time.perf_counter()
    parse_many(texts)
    return len(texts) / (time.perf_counter() - start)


def accuracy(parse_many: ParseMany, labelled_path: Path) -> dict[str, dict[str, float]]:
    """F1 etc. per prior type on the labelled set, overall and per split."""
    items = load_labelled(labelled_path)
    predicted = parse_many([item.caption for item in items])
    result = {"all": score(predicted, [item.gold for item in items])}
    for split in sorted({item.split for item in items}):
        chosen = [i for i, item in enumerate(items) if item.split == split]
        result[split] = score([predicted[i] for i in chosen], [items[i].gold for i in chosen])
    return {name: {k: s.to_dict() for k, s in scores.items()} for name, scores in result.items()}


def print_table(speed: dict[str, float], scores: dict[str, dict]) -> None:
    print(f"{'parser':<14}{'captions/s':>12}" + "".join(f"{'F1 ' + t:>16}" for t in PRIOR_TYPES))
    for name in ("ours", "sng_parser"):
        f1s = "".join(f"{scores[name]['all'][t]['f1']:>16.3f}" for t in PRIOR_TYPES)
        print(f"{name:<14}{speed[name]:>12.1f}{f1s}")
    print(f"speed ratio (ours / sng_parser): {speed['ours'] / speed['sng_parser']:.2f}x")


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--captions", type=int, default=5000, help="how many captions to time")
    options.add_argument("--input", type=Path, help="JSONL of real captions instead of generated")
    options.add_argument("--labelled", type=Path, default=LABELLED, help="labelled caption set")
    options.add_argument("--batch-size", type=int, default=256)
    options.add_argument("--n-process", type=int, default=2)
    options.add_argument("--pipeline", help="spaCy pipeline for both parsers")
    options.add_argument("--seed", type=int, default=0)
    args = options.parse_args()

    texts = load_captions(args.input, args.captions, args.seed)
    ours = CaptionParser(args.pipeline, batch_size=args.batch_size, n_process=args.n_process)
    single = CaptionParser(args.pipeline, batch_size=args.batch_size)
    peer = PeerParser(args.pipeline)
    speed = {
        "ours": throughput(ours.parse_many, texts),
        "sng_parser": throughput(peer.parse_many, texts),
    }
    scores = {
        "ours": accuracy(single.parse_many, args.labelled),
        "sng_parser": accuracy(peer.parse_many, args.labelled),
    }
    print_table(speed, scores)
    print(
        json.dumps(
            {
                "captions": len(texts),
                "pipeline": ours.pipeline,
                "n_process": args.n_process,
                "batch_size": args.batch_size,
                "captions_per_s": {name: round(value, 1) for name, value in speed.items()},
                "speed_ratio": round(speed["ours"] / speed["sng_parser"], 2),
                "accuracy": scores,
            }
        )
    )


if __name__ == "__main__":
    main()
