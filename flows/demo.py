"""`make demo`: the whole product on the synthetic demo set, through the real Prefect deployments.

Generate the demo set, build the demo world's tiny CLIP (once), start a local Prefect server,
serve both deployments, run `extract-priors/default` then `train-segmenter/default` with
`prefect deployment run --watch`, print the prior statistics and the evaluation, and stop what
was started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flows.children import cli_command
from flows.server import ServerState, server_status, start_server, stop_server

DEPLOYMENTS = ("extract-priors/default", "train-segmenter/default")
DEMO_CONFIG = Path("segmentation/configs/llmformer_tiny_demo.py")
OVERLAY_PICTURES = 6


class DemoError(RuntimeError):
    """A demo step failed; the message names the step and where its log is."""


@dataclass(frozen=True)
class DemoPaths:
    """Where the demo keeps everything, all under one data dir."""

    data_dir: Path

    @property
    def dataset(self) -> Path:
        return self.data_dir / "datasets" / "demo"

    @property
    def clip(self) -> Path:
        return self.data_dir / "clip" / "tiny_clip"

    @property
    def store(self) -> Path:
        return self.data_dir / "store"

    @property
    def work_dir(self) -> Path:
        return self.data_dir / "work_dirs" / "llmformer_tiny_demo"

    @property
    def plots(self) -> Path:
        return self.data_dir / "plots"

    @property
    def overlays(self) -> Path:
        return self.data_dir / "overlays"

    @property
    def serve_log(self) -> Path:
        return self.data_dir / "prefect" / "serve.log"


def ensure_demo_dataset(paths: DemoPaths) -> None:
    """Generate the demo set unless it is already there."""
    if (paths.dataset / "captions.jsonl").exists():
        print(f"demo set: {paths.dataset} (already generated)")
        return
    from segmentation.demo import DemoSpec, write_demo

    write_demo(DemoSpec(), paths.dataset)
    print(f"demo set: generated in {paths.dataset}")


def ensure_tiny_clip(paths: DemoPaths) -> None:
    """Build the tiny CLIP unless it is there; print its zero-shot accuracy either way."""
    from segmentation.demo.tiny_clip import ensure_tiny_clip as build

    record = build(paths.clip)
    shot = record["zero_shot"]
    print(
        f"tiny CLIP: {paths.clip} (built in {record['seconds']:.0f} s); zero-shot shape accuracy "
        f"on held-out demo crops seen {shot['crop']['seen']:.1f}% unseen "
        f"{shot['crop']['unseen']:.1f}%, mask-pooled dense features seen "
        f"{shot['dense']['seen']:.1f}% unseen {shot['dense']['unseen']:.1f}%"
    )


@contextmanager
def prefect_server(data_dir: Path) -> Iterator[str]:
    """A healthy local server for the block; stopped afterwards only if this block started it."""
    was_running = server_status(data_dir).state is ServerState.RUNNING
    status = start_server(data_dir)
    try:
        yield status.record.api_url
    finally:
        if not was_running:
            stop_server(data_dir)


@contextmanager
def serving(paths: DemoPaths, environment: dict[str, str]) -> Iterator[None]:
    """`python -m flows.serve` in the background until both deployments are registered."""
    paths.serve_log.parent.mkdir(parents=True, exist_ok=True)
    with paths.serve_log.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "flows.serve"],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_deployments(environment, process, paths.serve_log)
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_for_deployments(environment: dict[str, str], process, log: Path, timeout=120.0) -> None:
    """Block until every deployment in DEPLOYMENTS can be inspected on the server."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoError(f"serving the deployments stopped early; see {log}")
        if all(
            _prefect(["deployment", "inspect", name], environment, quiet=True) == 0
            for name in DEPLOYMENTS
        ):
            return
        time.sleep(2)
    raise DemoError(f"deployments not registered after {timeout:.0f} s; see {log}")


def _prefect(arguments: list[str], environment: dict[str, str], quiet: bool = False) -> int:
    output = subprocess.DEVNULL if quiet else None
    command = [sys.executable, "-m", "prefect", *arguments]
    return subprocess.run(command, env=environment, stdout=output, stderr=output).returncode


def run_deployment(name: str, params: dict, environment: dict[str, str]) -> None:
    """`prefect deployment run NAME --watch --params JSON` (one key per flow parameter)."""
    arguments = ["deployment", "run", name, "--watch", "--params", json.dumps(params)]
    print(f"$ prefect {' '.join(arguments[:4])}")
    if _prefect(arguments, environment) != 0:
        raise DemoError(f"{name} failed; its log is in the Prefect server (see above)")


def report(paths: DemoPaths) -> None:
    """Print prior statistics and the evaluation table, and write the prior plots."""
    from segmentation.demo import images_showing_unseen
    from segmentation.training import last_checkpoint

    cli = cli_command(0)
    subprocess.run([*cli, "priors", "stats", "--store", str(paths.store), "--top", "8"], check=True)
    subprocess.run(
        [*cli, "priors", "plot", "--store", str(paths.store), "--out", str(paths.plots)], check=True
    )
    table = paths.work_dir / "eval" / "eval.md"
    if table.exists():
        print(table.read_text())
    checkpoint = str(last_checkpoint(paths.work_dir))
    pictures = images_showing_unseen(paths.dataset, OVERLAY_PICTURES)
    segment = [*cli, "segment", *map(str, pictures), "--config", str(DEMO_CONFIG)]
    segment += ["--checkpoint", checkpoint]
    priors = [
        "--captions",
        str(paths.dataset / "captions.jsonl"),
        "--image-root",
        str(paths.dataset / "images"),
    ]
    vocabularies = {
        paths.overlays: ["--vocab-file", str(paths.dataset / "classes.txt"), *priors],
        paths.overlays / "no_vocab": ["--no-vocab", *priors],
    }
    environment = {**os.environ, "LLMFORMER_TINY_CLIP": str(paths.clip)}
    for out, vocabulary in vocabularies.items():
        subprocess.run([*segment, *vocabulary, "--out", str(out)], check=True, env=environment)
    print(
        f"overlays of the first {len(pictures)} validation pictures with an unseen shape: "
        f"{paths.overlays} (the demo classes), {paths.overlays / 'no_vocab'} "
        "(each picture's caption objects)\n"
        f"prior plots: {paths.plots}\n"
        f"training curves: {paths.work_dir / 'curves.png'} "
        f"(live: tensorboard --logdir {paths.work_dir.parent})\n"
        f"priors report: {paths.work_dir / 'report' / 'report.md'}\n"
        f"checkpoints and logs: {paths.work_dir}"
    )


def run_demo(data_dir: Path, max_iters: int | None = None) -> None:
    """Everything `make demo` shows, on the demo set under `data_dir`."""
    from segmentation.demo.tiny_clip import tiny_clip_options

    paths = DemoPaths(data_dir.resolve())
    ensure_demo_dataset(paths)
    ensure_tiny_clip(paths)
    extract = {
        "store": str(paths.store),
        "dataset": "demo",
        "data_root": str(paths.dataset),
        "captioner": "file",
        "captions": str(paths.dataset / "captions.jsonl"),
    }
    roots = [
        f"{loader}.dataset.data_root={paths.dataset}"
        for loader in ("train_dataloader", "val_dataloader", "test_dataloader")
    ]
    train = {
        "prior_store": str(paths.store),
        "work_dir": str(paths.work_dir),
        "datasets": ["demo"],
        "data_root": str(paths.dataset.parent),
        "max_iters": max_iters,
        "cfg_options": [*roots, *tiny_clip_options(paths.clip)],
    }
    with prefect_server(paths.data_dir) as api_url:
        environment = {**os.environ, "PREFECT_API_URL": api_url}
        with serving(paths, environment):
            run_deployment(DEPLOYMENTS[0], extract, environment)
            run_deployment(DEPLOYMENTS[1], train, environment)
    report(paths)
