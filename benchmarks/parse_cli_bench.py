"""`llmformer priors parse` timed as a whole process with its defaults (one parser process per
core), against the public peer `sng_parser` parsing in-process, on the same paragraph-length
captions (generated as in `parse_bench.py`, or your own JSONL with --input).

The CLI's figure includes everything a user waits for: interpreter start, imports, loading a
spaCy pipeline per worker, reading and writing JSONL. The peer is timed on the first
--peer-captions of the same captions, already loaded. Prints a table, then one JSON line.

    .venv/bin/python benchmarks/parse_cli_bench.py --captions 20000 --peer-captions 1000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from parse_bench import load_captions

from prior_extraction.parsing import default_process_count
from prior_extraction.peer_parser import PeerParser

REPOSITORY = Path(__file__).resolve().parents[1]


def write_captions(texts: list[str], path: Path) -> None:
    with path.open("w", encoding="utf-8") as lines:
        for index, text in enumerate(texts):
            lines.write(json.dumps({"id": f"c{index:07d}", "caption": text}) + "\n")


def time_cli(input_path: Path, output_path: Path) -> float:
    """Seconds `llmformer priors parse` takes from start to exit, with its defaults."""
    command = [sys.executable, "-m", "flows.cli", "priors", "parse"]
    command += ["--input", str(input_path), "--output", str(output_path), "--no-progress"]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPOSITORY), *sys.path])}
    began = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPOSITORY, env=environment, capture_output=True)
    return time.perf_counter() - began


def time_peer(texts: list[str], pipeline: str | None) -> float:
    peer = PeerParser(pipeline)
    peer.parse_many(texts[:5])
    began = time.perf_counter()
    peer.parse_many(texts)
    return len(texts) / (time.perf_counter() - began)


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--captions", type=int, default=20_000, help="captions the CLI parses")
    options.add_argument("--peer-captions", type=int, default=1000, help="captions the peer times")
    options.add_argument("--input", type=Path, help="JSONL of real captions instead of generated")
    options.add_argument("--pipeline", help="spaCy pipeline for the peer")
    options.add_argument("--seed", type=int, default=0)
    args = options.parse_args()

    texts = load_captions(args.input, args.captions, args.seed)
    with tempfile.TemporaryDirectory() as folder:
        input_path, output_path = Path(folder) / "captions.jsonl", Path(folder) / "priors.jsonl"
        write_captions(texts, input_path)
        seconds = time_cli(input_path, output_path)
        with output_path.open(encoding="utf-8") as lines:
            parsed = sum(1 for _ in lines)
    cli_rate = parsed / seconds
    peer_rate = time_peer(texts[: args.peer_captions], args.pipeline)
    print(f"{'what':<44}{'captions':>10}{'seconds':>10}{'captions/s':>12}{'x peer':>8}")
    print(f"{'llmformer priors parse (whole process)':<44}{parsed:>10}{seconds:>10.1f}", end="")
    print(f"{cli_rate:>12.1f}{cli_rate / peer_rate:>8.2f}")
    peer_seconds = args.peer_captions / peer_rate
    print(f"{'sng_parser (in process)':<44}{args.peer_captions:>10}{peer_seconds:>10.1f}", end="")
    print(f"{peer_rate:>12.1f}{1:>8.2f}")
    print(
        json.dumps(
            {
                "captions": parsed,
                "cli_seconds": round(seconds, 2),
                "cli_captions_per_s": round(cli_rate, 1),
                "cli_processes": default_process_count(),
                "peer_captions": args.peer_captions,
                "peer_captions_per_s": round(peer_rate, 1),
                "speed_ratio": round(cli_rate / peer_rate, 2),
                "cpu_count": os.cpu_count(),
                "load_average_1min": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
