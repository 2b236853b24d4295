"""What a user at scale cares about, measured on a synthetic prior set of `--images` images:

1. priors memory per dataloader worker: before, `LoadPriors` read a whole split's priors into
   every worker; now it reads the priors of each image it loads. Each way runs in a fresh
   process (as a worker would), which loads `--loads` random images; its peak resident memory
   above what it held after imports, and the per-image latency, are reported.
2. the size of the `extract-shards` run's parameters: before, every pending image of every shard;
   now a plan of shard indices into the source's listing.

Prints a table, then one JSON line.

    python benchmarks/scale_bench.py [--images 200000] [--loads 300]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import statistics
import tempfile
import time
from pathlib import Path
from uuid import uuid4

DATASET, SPLIT = "bench", "train"
WRITE_SHARD = 10_000
"""Images per shard written while building the store (compacted afterwards, as a run is)."""


def image_id(index: int) -> str:
    return f"{SPLIT}/{index:07d}.jpg"


def build_store(root: Path, images: int) -> str:
    """A compacted prior set of `images` images, each with 4 objects, 2 attributes and a
    relation; returns its id."""
    from storage import ImagePriors, ImageRecord, PriorSetSpec, PriorStore

    store = PriorStore(root)
    spec = PriorSetSpec("file", "bench-captions", "Describe the image.", {}, "bench", "1")
    prior_set_id = store.register_prior_set(spec)
    names = ["dog", "sofa", "red car", "tree", "window", "table", "lamp", "cat"]
    for start in range(0, images, WRITE_SHARD):
        ids = [image_id(index) for index in range(start, min(start + WRITE_SHARD, images))]
        records = [ImageRecord(i, f"/data/{i}", 640, 480, None, "ok") for i in ids]
        priors = [
            ImagePriors(
                i,
                "A brown dog lies on a sofa next to a red car, a tree and a window.",
                objects=[
                    {"name": names[(n + k) % len(names)], "span": "a thing", "count": 1}
                    for k in range(4)
                ],
                attributes=[
                    {"object": 0, "value": "brown", "kind": "color"},
                    {"object": 2, "value": "red", "kind": "color"},
                ],
                relations=[{"subject": 0, "predicate": "on", "object": 1}],
            )
            for n, i in enumerate(ids)
        ]
        store.write_shard(prior_set_id, DATASET, SPLIT, f"bench-{start}", records, priors, [])
    store.compact(prior_set_id)
    return prior_set_id


def _resident_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def worker_memory(way: str, store_root: str, prior_set_id: str, ids: list[str]) -> dict:
    """In a fresh process: load the priors of `ids` the `way` given; peak memory above the
    process's after imports, first-image and per-image latency."""
    from segmentation.transforms.priors import LoadPriors, PriorGraph
    from storage import PriorStore

    before = _resident_kib("VmRSS")
    started = time.perf_counter()
    latencies = []
    if way == "whole split (before)":
        store = PriorStore(store_root, create=False)
        split_ids = sorted(store.done_image_ids(prior_set_id, DATASET, SPLIT))
        records = store.read_priors(prior_set_id, split_ids)
        loaded = {key: PriorGraph.from_record(record) for key, record in records.items()}
        first_s = time.perf_counter() - started
        for key in ids:
            tick = time.perf_counter()
            assert not loaded[key].is_empty
            latencies.append(time.perf_counter() - tick)
    else:
        transform = LoadPriors(store_root, prior_set_id)
        for key in ids:
            tick = time.perf_counter()
            assert not transform({"img_id": key})["priors"].is_empty
            latencies.append(time.perf_counter() - tick)
        first_s = latencies[0]
    return {
        "peak_mib": (_resident_kib("VmHWM") - before) / 1024,
        "first_s": first_s,
        "p50_ms": 1000 * statistics.median(latencies[1:]),
        "p95_ms": 1000 * statistics.quantiles(latencies[1:], n=20)[-1],
    }


def in_fresh_process(function, *arguments):
    """Run `function(*arguments)` in a spawned process (none of this one's memory) and return
    its result."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, arguments)


def parameter_sizes(folder: Path, images: int, shard_size: int) -> dict[str, int]:
    """Bytes of the `extract-shards` run's parameters for a source of `images` pending images,
    as Prefect serializes them when it creates the run: the shards' image lists against the
    plan."""
    from flows.extract import (
        ExtractPriorsParameters,
        extract_shards,
        list_source,
        plan_extraction,
    )

    manifest = folder / "manifest.jsonl"
    with manifest.open("w") as lines:
        for index in range(images):
            lines.write(json.dumps({"id": image_id(index), "path": f"/data/{index}.jpg"}) + "\n")
    captions = folder / "captions.jsonl"
    captions.touch()
    params = ExtractPriorsParameters(
        store=folder / "store",
        manifest=manifest,
        dataset=None,
        captions=captions,
        shard_size=shard_size,
    )
    listing = list_source(params)
    progress = uuid4()
    lists = {"params_json": params.model_dump_json(), "shards": listing.shards}
    plan = {
        "params_json": params.model_dump_json(),
        "plan": plan_extraction(listing, listing.items),
    }
    return {
        name: len(
            json.dumps(extract_shards.serialize_parameters({**value, "progress_id": progress}))
        )
        for name, value in (("image lists (before)", lists), ("plan (after)", plan))
    }


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=200_000, help="Images in the prior set.")
    parser.add_argument("--loads", type=int, default=300, help="Images each worker loads.")
    parser.add_argument("--shard-size", type=int, default=256, help="The flow's shard size.")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> None:
    arguments = parse_arguments()
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as folder:
        root = Path(folder)
        tick = time.perf_counter()
        prior_set_id = build_store(root / "store", arguments.images)
        build_s = time.perf_counter() - tick
        ids = [
            image_id(index)
            for index in random.Random(arguments.seed).sample(
                range(arguments.images), arguments.loads
            )
        ]
        memory = {
            way: in_fresh_process(worker_memory, way, str(root / "store"), prior_set_id, ids)
            for way in ("whole split (before)", "per image (after)")
        }
        sizes = parameter_sizes(root, arguments.images, arguments.shard_size)
    print(
        f"{arguments.images} images, {arguments.loads} loaded per worker (store built in "
        f"{build_s:.0f} s)"
    )
    print(
        f"{'priors per dataloader worker':<30}{'peak MiB':>10}{'first s':>10}"
        f"{'p50 ms':>10}{'p95 ms':>10}"
    )
    for way, figures in memory.items():
        print(
            f"{way:<30}{figures['peak_mib']:>10.1f}{figures['first_s']:>10.2f}"
            f"{figures['p50_ms']:>10.2f}{figures['p95_ms']:>10.2f}"
        )
    print(f"{'extract-shards parameters':<30}{'bytes':>10}")
    for name, size in sizes.items():
        print(f"{name:<30}{size:>10}")
    before, after = memory.values()
    print(
        json.dumps(
            {
                "images": arguments.images,
                "loads_per_worker": arguments.loads,
                "worker_priors_mib_before": round(before["peak_mib"], 1),
                "worker_priors_mib_after": round(after["peak_mib"], 1),
                "first_image_s_before": round(before["first_s"], 2),
                "per_image_ms_p50_after": round(after["p50_ms"], 2),
                "per_image_ms_p95_after": round(after["p95_ms"], 2),
                "parameters_bytes_before": sizes["image lists (before)"],
                "parameters_bytes_after": sizes["plan (after)"],
            }
        )
    )


if __name__ == "__main__":
    main()
