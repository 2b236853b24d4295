"""Prior store benchmark: write throughput and statistics latency vs. pandas over a JSONL dump.

Generates a synthetic store (per image about 8 objects, 6 attributes, 5 relations; Zipf
vocabularies of 5,000 object names, 800 attribute values, 300 predicates), writes it through
`PriorStore.write_shard` and compacts it (timed), as a store is once `llmformer priors compact`
ran after an extraction: the statistics are timed on that store (p50/p95 over `--repeats` runs
after one warm-up), with `read_priors` of 1,000 random images; then top_relations again after
`--fresh-shards` more shards were written without compaction. Compaction runs in a child process
so that its peak memory is its own. With `--s3` the store lives on a moto S3 server this script
starts on a loopback port (the local S3 figures). The naive baseline computes the
same statistics with pandas from a JSONL dump of the same priors, read in chunks of
`--naive-chunk` images whose partial counts are added up (load + compute, once), so that it fits
in memory at 1M images. The last line printed is one JSON object.

With `--baseline DIR` the store_bench.py of another checkout (today's Parquet store: `git worktree
add DIR 1d9b9fc`) runs first with the same arguments, and both runs' figures are compared.

    python benchmarks/store_bench.py --images 200000
    python benchmarks/store_bench.py --images 1000000 --skip-naive --baseline /tmp/parquet-store
    python benchmarks/store_bench.py --images 200000 --s3 --skip-naive
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
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
S3_BUCKET = "llmformer-bench"
SERVER_START_S, CHILD_WAIT_S = 30.0, 3600.0


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


def shards(
    vocabulary: Vocabulary, first: int, images: int, shard_size: int
) -> Iterator[list[ImagePriors]]:
    for start in range(first, first + images, shard_size):
        yield synthetic_priors(vocabulary, start, min(shard_size, first + images - start))


def write_shard(store: PriorStore, prior_set: str, index: int, shard: list[ImagePriors]) -> float:
    """Seconds to write one shard of images with priors."""
    records = [ImageRecord(p.image_id, f"{p.image_id}.jpg", 640, 480, None, "ok") for p in shard]
    started = time.perf_counter()
    store.write_shard(prior_set, DATASET, "train", f"shard-{index:05d}", records, shard, [])
    return time.perf_counter() - started


def write_store(
    store: PriorStore, vocabulary: Vocabulary, images: int, shard_size: int, dump: Path
) -> tuple[str, int, float]:
    """Write every shard to the store (timed) and to the JSONL dump (untimed)."""
    spec = PriorSetSpec("file", "synthetic", "Describe the image.", {}, "bench", "1", "bench")
    prior_set = store.register_prior_set(spec)
    rows, seconds = 0, 0.0
    with dump.open("w") as sink:
        for index, shard in enumerate(shards(vocabulary, 0, images, shard_size)):
            seconds += write_shard(store, prior_set, index, shard)
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


@dataclass(frozen=True)
class NaiveStatistic:
    """A statistic computed naively: counts per chunk of the dump, then a report of their sum."""

    count: Callable[[pd.DataFrame], pd.Series | pd.DataFrame]
    report: Callable[[pd.Series | pd.DataFrame], object]


def naive_statistics(classes: list[list[str]]) -> dict[str, NaiveStatistic]:
    """The statistics of storage.stats, computed with pandas on DataFrames of the JSONL dump."""

    def object_counts(frame):
        objects = pd.DataFrame(frame["objects"].explode().dropna().tolist())
        return objects.groupby("name")["count"].agg(["size", "sum"])

    def attribute_counts(frame):
        attributes = pd.DataFrame(frame["attributes"].explode().dropna().tolist())
        return attributes.groupby(["kind", "value"]).size()

    def triple_counts(frame):
        items = frame[["objects", "relations"]].explode("relations").dropna(subset=["relations"])
        relations = pd.DataFrame(items["relations"].tolist(), index=items.index)
        objects = items["objects"]
        relations["subject_name"] = [
            o[s]["name"] for o, s in zip(objects, relations["subject"], strict=True)
        ]
        relations["object_name"] = [
            o[s]["name"] for o, s in zip(objects, relations["object"], strict=True)
        ]
        return relations.groupby(["subject_name", "predicate", "object_name"]).size()

    def predicate_counts(frame):
        return pd.Series([r["predicate"] for rs in frame["relations"] for r in rs]).value_counts()

    def name_counts(frame):
        return pd.Series([o["name"] for os_ in frame["objects"] for o in os_]).value_counts()

    def attributes_by_kind(counts):
        counts = counts.rename("mentions").reset_index()
        return counts.sort_values("mentions", ascending=False).groupby("kind").head(TOP)

    def class_coverage(mentions):
        covered = [any(mentions.get(name, 0) > 0 for name in names) for names in classes]
        return sum(covered) / len(classes)

    def top(counts):
        return counts.sort_values(ascending=False).head(TOP)

    return {
        "top_objects": NaiveStatistic(
            object_counts, lambda counts: counts.sort_values("size", ascending=False).head(TOP)
        ),
        "attributes_by_kind": NaiveStatistic(attribute_counts, attributes_by_kind),
        "top_relations": NaiveStatistic(triple_counts, top),
        "relation_predicates": NaiveStatistic(predicate_counts, top),
        "objects_per_image": NaiveStatistic(
            lambda frame: frame["objects"].str.len().value_counts(),
            lambda counts: counts.sort_index(),
        ),
        "class_coverage": NaiveStatistic(name_counts, class_coverage),
    }


def add_up(partials: list[pd.Series | pd.DataFrame]) -> pd.Series | pd.DataFrame:
    """The sum of partial counts indexed by the same keys (a key missing from a part counts 0)."""
    combined = pd.concat(partials)
    return combined.groupby(level=list(range(combined.index.nlevels))).sum()


def time_naive(dump: Path, classes: list[list[str]], chunk_images: int) -> dict[str, float]:
    """Milliseconds per statistic: loading the dump (shared) plus computing that statistic."""
    naive = naive_statistics(classes)
    partials: dict[str, list] = {name: [] for name in naive}
    seconds = dict.fromkeys(naive, 0.0)
    load_seconds = 0.0
    with pd.read_json(dump, lines=True, chunksize=chunk_images) as chunks:
        while True:
            started = time.perf_counter()
            frame = next(chunks, None)
            load_seconds += time.perf_counter() - started
            if frame is None:
                break
            for name, statistic_ in naive.items():
                started = time.perf_counter()
                partials[name].append(statistic_.count(frame))
                seconds[name] += time.perf_counter() - started
    for name, statistic_ in naive.items():
        started = time.perf_counter()
        statistic_.report(add_up(partials.pop(name)))
        seconds[name] += time.perf_counter() - started
    return {name: (load_seconds + spent) * 1000 for name, spent in seconds.items()}


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--shard-size", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--fresh-shards",
        type=int,
        default=2,
        help="Shards written after compaction before top_relations is timed once more.",
    )
    parser.add_argument(
        "--naive-chunk", type=int, default=50_000, help="Images per DataFrame of the baseline."
    )
    parser.add_argument(
        "--root", type=Path, default=None, help="Where to build the store (temp dir)."
    )
    parser.add_argument("--skip-naive", action="store_true", help="Do not run the pandas baseline.")
    parser.add_argument(
        "--s3", action="store_true", help="Put the store on a local moto S3 server it starts."
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="A checkout of another version of the store (e.g. `git worktree add DIR 1d9b9fc`, "
        "the Parquet store): its store_bench.py runs first with the same arguments, and the "
        "figures are printed side by side.",
    )
    return parser.parse_args()


def run_baseline(checkout: Path) -> dict:
    """The figures (last JSON line) of `checkout`'s store_bench.py, run with this run's
    arguments (less --baseline and --s3) and `checkout` on PYTHONPATH."""
    arguments, skip = [], 0
    for argument in sys.argv[1:]:
        if skip:
            skip -= 1
        elif argument == "--baseline":
            skip = 1
        elif not argument.startswith("--baseline=") and argument != "--s3":
            arguments.append(argument)
    script = checkout / "benchmarks" / "store_bench.py"
    completed = subprocess.run(
        [sys.executable, str(script), *arguments],
        env={**os.environ, "PYTHONPATH": str(checkout)},
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=CHILD_WAIT_S,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"the baseline run failed: {completed.stderr.strip()[-500:]}")
    print(f"baseline ({checkout}):\n{completed.stdout}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def compare(baseline: dict, figures: dict) -> None:
    """Each view's p50 and the other figures of both runs, with this run's / the baseline's."""
    print(f"{'figure':<34}{'baseline':>12}{'this':>12}{'this/base':>11}")
    rows = [(f"{name} p50 ms", name) for name in figures["query_p50_ms"]]
    for label, name in rows:
        before, now = baseline["query_p50_ms"].get(name), figures["query_p50_ms"][name]
        _compare_row(label, before, now)
    for label, key in (
        ("top_relations +new shards p50 ms", "top_relations_after_fresh_shards_p50_ms"),
        ("read_priors (1000 ids) p50 ms", "read_priors_1000_p50_ms"),
        ("write rows/s", "write_rows_per_s"),
        ("compact s", "compact_s"),
        ("compact peak RSS GiB", "compact_peak_rss_gib"),
        ("peak RSS GiB", "peak_rss_gib"),
    ):
        _compare_row(label, baseline.get(key), figures[key])


def _compare_row(label: str, before: float | None, now: float) -> None:
    ratio = f"{now / before:>11.2f}" if before else f"{'':>11}"
    shown = f"{before:>12,.1f}" if before is not None else f"{'-':>12}"
    print(f"{label:<34}{shown}{now:>12,.1f}{ratio}")


@contextmanager
def local_s3_server() -> Iterator[str]:
    """A moto S3 server on a free loopback port with a bucket; the AWS variables point at it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    executable = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if executable is None:
        raise SystemExit("--s3 needs moto[server] installed next to this Python")
    server = subprocess.Popen(
        [executable, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("moto_server did not start") from None
                time.sleep(0.1)
        os.environ.update(
            AWS_ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_REGION="us-east-1",
            AWS_ALLOW_HTTP="true",
        )
        request = urllib.request.Request(f"{endpoint}/{S3_BUCKET}", method="PUT")
        urllib.request.urlopen(request, timeout=10).close()
        yield f"s3://{S3_BUCKET}/{uuid.uuid4().hex}"
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


def _compact(root: str, peak: multiprocessing.Queue) -> None:
    """Compact the store, then report this process's own peak memory (VmHWM, kB)."""
    PriorStore(root).compact()
    status = Path("/proc/self/status").read_text().splitlines()
    peak.put(next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")))


def compact_in_child(root: str) -> float:
    """Compact the store in a spawned process; returns that process's peak memory in GiB (its
    own high-water mark: getrusage would count the parent's memory from before the exec)."""
    context = multiprocessing.get_context("spawn")
    peak = context.Queue()
    child = context.Process(target=_compact, args=(root, peak))
    child.start()
    child.join(CHILD_WAIT_S)
    if child.is_alive():
        child.terminate()
        child.join(10)
        raise SystemExit(f"compaction did not finish in {CHILD_WAIT_S:.0f} s")
    if child.exitcode != 0:
        raise SystemExit(f"compaction failed (exit code {child.exitcode})")
    return peak.get(timeout=10) / 2**20


class Phases:
    """Wall-clock seconds of each phase of the run, and the peak memory after each."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.peak_gib: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - started
        self.peak_gib[name] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def time_statistics(
    store: PriorStore, prior_set: str, names: Iterable[str], repeats: int
) -> dict[str, tuple[float, float]]:
    """p50 and p95 of each statistic of the benchmark's prior set and dataset."""
    connection = store.connect()
    where = StatisticsFilter(dataset=DATASET, prior_set_id=prior_set, top=TOP)
    return {
        name: time_query(lambda name=name: statistic(connection, name, where), repeats)
        for name in names
    }


def main() -> None:
    arguments = parse_arguments()
    baseline = run_baseline(arguments.baseline.resolve()) if arguments.baseline else None
    with local_s3_server() if arguments.s3 else nullcontext() as url:
        figures = run(arguments, url)
    if baseline is not None:
        compare(baseline, figures)
        print(json.dumps({**figures, "baseline": baseline}))


def run(arguments: argparse.Namespace, store_url: str | None) -> dict:
    """Write, compact and query a store at `store_url` (or in a scratch folder), then report."""
    phases = Phases()
    with tempfile.TemporaryDirectory(dir=arguments.root) as scratch:
        store = PriorStore(store_url or Path(scratch) / "store")
        vocabulary = Vocabulary(np.random.default_rng(arguments.seed))
        dump = Path(scratch) / "priors.jsonl"
        with phases.phase("generate+write"):
            prior_set, rows, write_seconds = write_store(
                store, vocabulary, arguments.images, arguments.shard_size, dump
            )
            classes = class_names(vocabulary)
            store.write_class_names(DATASET, classes)
        with phases.phase("compact"):
            compact_peak_gib = compact_in_child(str(store.root))
        with phases.phase("queries"):
            latencies = time_statistics(store, prior_set, STATISTICS_SQL, arguments.repeats)
            wanted = [f"{i:08d}" for i in np.random.default_rng(1).choice(arguments.images, 1000)]
            read_latency = time_query(
                lambda: store.read_priors(prior_set, wanted), arguments.repeats
            )
        with phases.phase("fresh shards"):
            fresh = shards(
                vocabulary,
                arguments.images,
                arguments.fresh_shards * arguments.shard_size,
                arguments.shard_size,
            )
            first_index = -(-arguments.images // arguments.shard_size)
            for index, shard in enumerate(fresh, start=first_index):
                write_shard(store, prior_set, index, shard)
            fresh_latency = time_statistics(store, prior_set, ["top_relations"], arguments.repeats)[
                "top_relations"
            ]
        with phases.phase("naive"):
            naive = {} if arguments.skip_naive else time_naive(dump, classes, arguments.naive_chunk)
    phases.peak_gib["compact"] = compact_peak_gib
    return report(
        arguments, phases, rows, write_seconds, latencies, read_latency, fresh_latency, naive
    )


def report(
    arguments: argparse.Namespace,
    phases: Phases,
    rows: int,
    write_seconds: float,
    latencies: dict[str, tuple[float, float]],
    read_latency: tuple[float, float],
    fresh_latency: tuple[float, float],
    naive: dict[str, float],
) -> dict:
    """The table, then one JSON line of figures (returned)."""
    print(f"store on {'a local moto S3 server' if arguments.s3 else 'local disk'}")
    print(
        f"images {arguments.images:,}  rows {rows:,}  write {write_seconds:.1f} s "
        f"({rows / write_seconds:,.0f} rows/s)  compact {phases.seconds['compact']:.1f} s"
    )
    print(
        "statistics timed on the compacted store (as after `llmformer priors compact`); "
        f"naive: pandas over the JSONL dump in chunks of {arguments.naive_chunk:,} images"
    )
    print(f"{'statistic':<34}{'p50 ms':>10}{'p95 ms':>10}{'naive ms':>12}{'naive/p50':>11}")
    for name, (p50, p95) in latencies.items():
        naive_ms = naive.get(name, float("nan"))
        print(f"{name:<34}{p50:>10.1f}{p95:>10.1f}{naive_ms:>12.0f}{naive_ms / p50:>11.1f}")
    fresh_name = f"top_relations +{arguments.fresh_shards} new shards"
    print(f"{fresh_name:<34}{fresh_latency[0]:>10.1f}{fresh_latency[1]:>10.1f}")
    print(f"{'read_priors (1000 ids)':<34}{read_latency[0]:>10.1f}{read_latency[1]:>10.1f}")
    print(
        "phases: "
        + ", ".join(
            f"{name} {seconds:.0f} s (peak {phases.peak_gib[name]:.2f} GiB)"
            for name, seconds in phases.seconds.items()
        )
    )
    figures = {
        "images": arguments.images,
        "store": "s3" if arguments.s3 else "local",
        "write_rows_per_s": round(rows / write_seconds),
        "compact_s": round(phases.seconds["compact"], 2),
        "compact_peak_rss_gib": round(phases.peak_gib["compact"], 2),
        "query_p50_ms": {name: round(p50, 1) for name, (p50, _) in latencies.items()},
        "query_p95_ms": {name: round(p95, 1) for name, (_, p95) in latencies.items()},
        "naive_ratio": {name: round(naive[name] / latencies[name][0], 1) for name in naive},
        "top_relations_after_fresh_shards_p50_ms": round(fresh_latency[0], 1),
        "read_priors_1000_p50_ms": round(read_latency[0], 1),
        "phase_s": {name: round(seconds, 1) for name, seconds in phases.seconds.items()},
        "peak_rss_gib": round(max(phases.peak_gib.values()), 2),
    }
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
