"""Prior store benchmark: write throughput and statistics latency vs. pandas over a JSONL dump.

Generates a synthetic store (per image about 8 objects, 6 attributes, 5 relations; Zipf
vocabularies of 5,000 object names, 800 attribute values, 300 predicates), writes it through
`PriorStore.write_shard`, compacts it, times every statistic of `storage.stats` (p50/p95 over
`--repeats` runs after one warm-up), `read_priors` of 1,000 random images, and the same
statistics computed naively with pandas from a JSONL dump of the same priors (load + compute,
once). The last line printed is one JSON object.

    python benchmarks/store_bench.py --images 200000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from storage import ImagePriors, ImageRecord, PriorSetSpec, PriorStore
from storage.stats import STATISTICS_SQL, StatisticsFilter, statistic

OBJECT_NAMES, ATTRIBUTE_VALUES, PREDICATES = 5_000, 800, 300
MEAN_OBJECTS, MEAN_ATTRIBUTES, MEAN_RELATIONS = 8, 6, 5
KINDS = ("color", "size", "material", "count", "state", "other")
SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "gu", "de", "fi", "ho")
DATASET, CLASSES = "bench", 171
TOP = 20


def word(index: int) -> str:
    """A pronounceable word per index, so names look and compress like words."""
    letters = []
    while True:
        index, digit = divmod(index, len(SYLLABLES))
        letters.append(SYLLABLES[digit])
        if index == 0:
            return "".join(letters)


class Vocabulary:
    """Zipf-distributed object names, attribute values (with a kind each) and predicates."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.objects = [word(i) for i in range(OBJECT_NAMES)]
        self.attributes = [word(i + OBJECT_NAMES) for i in range(ATTRIBUTE_VALUES)]
        self.kinds = [KINDS[i % len(KINDS)] for i in range(ATTRIBUTE_VALUES)]
        self.predicates = [f"{word(i)} {word(i + 7)}" for i in range(PREDICATES)]

    def draw(self, vocabulary_size: int, count: int) -> np.ndarray:
        ranks = np.arange(1, vocabulary_size + 1)
        weights = 1.0 / ranks**1.1
        return self.rng.choice(vocabulary_size, size=count, p=weights / weights.sum())


def synthetic_priors(vocabulary: Vocabulary, first: int, count: int) -> list[ImagePriors]:
    """`count` images with Poisson-distributed numbers of objects, attributes and relations."""
    rng = vocabulary.rng
    n_objects = np.maximum(rng.poisson(MEAN_OBJECTS, count), 1)
    n_attributes = rng.poisson(MEAN_ATTRIBUTES, count)
    n_relations = np.where(n_objects > 1, rng.poisson(MEAN_RELATIONS, count), 0)
    names = iter(vocabulary.draw(OBJECT_NAMES, int(n_objects.sum())).tolist())
    values = iter(vocabulary.draw(ATTRIBUTE_VALUES, int(n_attributes.sum())).tolist())
    predicates = iter(vocabulary.draw(PREDICATES, int(n_relations.sum())).tolist())
    images = []
    for offset in range(count):
        objects = [
            {"name": vocabulary.objects[n], "span": f"the {vocabulary.objects[n]}", "count": 1}
            for n in (next(names) for _ in range(n_objects[offset]))
        ]
        attributes = [
            {"object": int(o), "value": vocabulary.attributes[v], "kind": vocabulary.kinds[v]}
            for o, v in zip(
                rng.integers(0, len(objects), n_attributes[offset]),
                (next(values) for _ in range(n_attributes[offset])),
                strict=True,
            )
        ]
        relations = [
            {
                "subject": int(s),
                "predicate": vocabulary.predicates[p],
                "object": int((s + d) % len(objects)),
            }
            for s, d, p in zip(
                rng.integers(0, len(objects), n_relations[offset]),
                rng.integers(1, max(len(objects), 2), n_relations[offset]),
                (next(predicates) for _ in range(n_relations[offset])),
                strict=True,
            )
        ]
        caption = "The image shows " + ", ".join(item["span"] for item in objects) + "."
        images.append(ImagePriors(f"{first + offset:08d}", caption, objects, attributes, relations))
    return images


def shards(vocabulary: Vocabulary, images: int, shard_size: int) -> Iterator[list[ImagePriors]]:
    for first in range(0, images, shard_size):
        yield synthetic_priors(vocabulary, first, min(shard_size, images - first))


def write_store(
    store: PriorStore, vocabulary: Vocabulary, images: int, shard_size: int, dump: Path
) -> tuple[str, int, float]:
    """Write every shard to the store (timed) and to the JSONL dump (untimed)."""
    spec = PriorSetSpec("file", "synthetic", "Describe the image.", {}, "bench", "1", "bench")
    prior_set = store.register_prior_set(spec)
    rows, seconds = 0, 0.0
    with dump.open("w") as sink:
        for index, shard in enumerate(shards(vocabulary, images, shard_size)):
            records = [
                ImageRecord(p.image_id, f"{p.image_id}.jpg", 640, 480, None, "ok") for p in shard
            ]
            started = time.perf_counter()
            store.write_shard(prior_set, DATASET, "train", f"shard-{index:05d}", records, shard, [])
            seconds += time.perf_counter() - started
            rows += sum(2 + len(p.objects) + len(p.attributes) + len(p.relations) for p in shard)
            for p in shard:
                sink.write(
                    json.dumps(
                        {
                            "id": p.image_id,
                            "objects": p.objects,
                            "attributes": p.attributes,
                            "relations": p.relations,
                        }
                    )
                    + "\n"
                )
    return prior_set, rows, seconds


def class_names(vocabulary: Vocabulary) -> list[list[str]]:
    """Every 20th object name as a class, with the next name as a synonym."""
    return [[vocabulary.objects[i], vocabulary.objects[i + 1]] for i in range(0, 20 * CLASSES, 20)]


def time_query(run: Callable[[], object], repeats: int) -> tuple[float, float]:
    """p50 and p95 in milliseconds over `repeats` runs after one warm-up run."""
    run()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(samples, 50)), float(np.percentile(samples, 95))


def naive_statistics(classes: list[list[str]]) -> dict[str, Callable[[pd.DataFrame], object]]:
    """The statistics of storage.stats, computed with pandas on a DataFrame of the JSONL dump."""

    def exploded(frame: pd.DataFrame, column: str) -> pd.DataFrame:
        items = frame[["objects", column]].explode(column).dropna(subset=[column])
        return items.join(pd.DataFrame(items[column].tolist(), index=items.index))

    def top_objects(frame):
        objects = pd.DataFrame(frame["objects"].explode().dropna().tolist())
        counts = objects.groupby("name")["count"].agg(["size", "sum"])
        return counts.sort_values("size", ascending=False).head(TOP)

    def attributes_by_kind(frame):
        attributes = pd.DataFrame(frame["attributes"].explode().dropna().tolist())
        counts = attributes.groupby(["kind", "value"]).size().rename("mentions").reset_index()
        return counts.sort_values("mentions", ascending=False).groupby("kind").head(TOP)

    def top_relations(frame):
        relations = exploded(frame, "relations")
        relations["subject_name"] = [
            o[s]["name"] for o, s in zip(relations["objects"], relations["subject"], strict=True)
        ]
        relations["object_name"] = [
            o[s]["name"] for o, s in zip(relations["objects"], relations["object"], strict=True)
        ]
        counts = relations.groupby(["subject_name", "predicate", "object_name"]).size()
        return counts.sort_values(ascending=False).head(TOP)

    def relation_predicates(frame):
        predicates = [r["predicate"] for rs in frame["relations"] for r in rs]
        return pd.Series(predicates).value_counts().head(TOP)

    def objects_per_image(frame):
        return frame["objects"].str.len().value_counts().sort_index()

    def class_coverage(frame):
        mentions = pd.Series([o["name"] for os_ in frame["objects"] for o in os_]).value_counts()
        covered = [any(mentions.get(name, 0) > 0 for name in names) for names in classes]
        return sum(covered) / len(classes)

    return {
        "top_objects": top_objects,
        "attributes_by_kind": attributes_by_kind,
        "top_relations": top_relations,
        "relation_predicates": relation_predicates,
        "objects_per_image": objects_per_image,
        "class_coverage": class_coverage,
    }


def time_naive(dump: Path, classes: list[list[str]]) -> dict[str, float]:
    """Milliseconds per statistic: loading the dump (shared) plus computing that statistic."""
    started = time.perf_counter()
    frame = pd.read_json(dump, lines=True)
    load_ms = (time.perf_counter() - started) * 1000
    timings = {}
    for name, compute in naive_statistics(classes).items():
        started = time.perf_counter()
        compute(frame)
        timings[name] = load_ms + (time.perf_counter() - started) * 1000
    return timings


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--shard-size", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--root", type=Path, default=None, help="Where to build the store (temp dir)."
    )
    parser.add_argument("--skip-naive", action="store_true", help="Do not run the pandas baseline.")
    return parser.parse_args()


def main() -> None:
    arguments = parse_arguments()
    with tempfile.TemporaryDirectory(dir=arguments.root) as scratch:
        store = PriorStore(Path(scratch) / "store")
        vocabulary = Vocabulary(np.random.default_rng(arguments.seed))
        dump = Path(scratch) / "priors.jsonl"
        prior_set, rows, write_seconds = write_store(
            store, vocabulary, arguments.images, arguments.shard_size, dump
        )
        classes = class_names(vocabulary)
        store.write_class_names(DATASET, classes)
        started = time.perf_counter()
        store.compact()
        compact_seconds = time.perf_counter() - started
        connection = store.connect()
        where = StatisticsFilter(dataset=DATASET, prior_set_id=prior_set, top=TOP)
        latencies = {
            name: time_query(
                lambda name=name: statistic(connection, name, where), arguments.repeats
            )
            for name in STATISTICS_SQL
        }
        wanted = [f"{i:08d}" for i in np.random.default_rng(1).choice(arguments.images, 1000)]
        read_p50, read_p95 = time_query(
            lambda: store.read_priors(prior_set, wanted), arguments.repeats
        )
        naive = {} if arguments.skip_naive else time_naive(dump, classes)

    print(
        f"images {arguments.images:,}  rows {rows:,}  write {write_seconds:.1f} s "
        f"({rows / write_seconds:,.0f} rows/s)  compact {compact_seconds:.1f} s"
    )
    print(f"{'statistic':<22}{'p50 ms':>10}{'p95 ms':>10}{'naive ms':>12}{'naive/p50':>11}")
    for name, (p50, p95) in latencies.items():
        naive_ms = naive.get(name, float("nan"))
        print(f"{name:<22}{p50:>10.1f}{p95:>10.1f}{naive_ms:>12.0f}{naive_ms / p50:>11.1f}")
    print(f"{'read_priors (1000 ids)':<22}{read_p50:>10.1f}{read_p95:>10.1f}")
    print(
        json.dumps(
            {
                "images": arguments.images,
                "write_rows_per_s": round(rows / write_seconds),
                "compact_s": round(compact_seconds, 2),
                "query_p50_ms": {name: round(p50, 1) for name, (p50, _) in latencies.items()},
                "query_p95_ms": {name: round(p95, 1) for name, (_, p95) in latencies.items()},
                "naive_ratio": {name: round(naive[name] / latencies[name][0], 1) for name in naive},
                "read_priors_1000_p50_ms": round(read_p50, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
