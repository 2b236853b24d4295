"""`llmformer priors extract`: caption, parse and store priors for a folder, manifest or dataset."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from flows.cli.checks import INTERRUPTED_EXIT_CODE, require_at_least, require_device

if TYPE_CHECKING:
    from prior_extraction.captioners import Captioner
    from prior_extraction.run import ExtractionSummary
    from prior_extraction.sources import ImageSource
    from storage import PriorStore

FIRST_SHOWN = 5
"""How many ids a warning lists."""


def extract(
    store: Annotated[
        str, typer.Option(help="Prior store: a folder or s3://bucket/prefix (created if missing).")
    ],
    captioner: Annotated[str, typer.Option(help="vllm | transformers | file")],
    images: Annotated[Path | None, typer.Option(help="Folder of images (recursive).")] = None,
    manifest: Annotated[
        Path | None, typer.Option(help='JSONL manifest of {"id", "path"} lines.')
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="Dataset name, e.g. coco_stuff_171, ade20k_150, demo.")
    ] = None,
    data_root: Annotated[Path | None, typer.Option(help="The dataset's root folder.")] = None,
    dataset_name: Annotated[
        str | None,
        typer.Option(
            help="Store a folder's or manifest's images under this dataset name "
            "[default: the folder's name, or the manifest's without its extension]."
        ),
    ] = None,
    captions: Annotated[
        Path | None, typer.Option(help="For --captioner file: JSONL or Parquet of id, caption.")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Hub id or local checkpoint (default LLaVA-1.5 7B).")
    ] = None,
    prompt: Annotated[str, typer.Option(help="simple | detailed | your own question.")] = "simple",
    prompt_format: Annotated[
        str | None,
        typer.Option(
            help="Hand-written chat format for a checkpoint without its own chat template "
            "(overrides the template): llava-1.5 | llava-next | qwen2-vl."
        ),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Images per caption call (default: 8, or a shard).")
    ] = None,
    shard_size: Annotated[int, typer.Option(help="Images per stored shard.")] = 256,
    limit: Annotated[int | None, typer.Option(help="Only the first N images.")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Longest caption, in tokens.")] = 256,
    device: Annotated[str | None, typer.Option(help="transformers device (cpu, cuda:0).")] = None,
    tensor_parallel_size: Annotated[
        int, typer.Option(help="vllm: GPUs per engine (tensor parallel over those visible).")
    ] = 1,
    partition: Annotated[
        str, typer.Option(help="I/N: this process's share, e.g. one vLLM process per GPU.")
    ] = "0/1",
    parse_processes: Annotated[
        int, typer.Option(help="Caption parser worker processes (1 = parse in this process).")
    ] = 1,
    name: Annotated[str | None, typer.Option(help="A label for the prior set.")] = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Also redo the images that failed before.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = True,
    compact: Annotated[
        bool,
        typer.Option(
            help="Compact the prior set's shards when the run completes, for fast statistics "
            "(skipped with --partition I/N: compact once every partition is done)."
        ),
    ] = True,
) -> None:
    """Extract LLM priors: validate images, caption them, parse captions, write shards to the store.

    Resumable: images the prior set already holds are skipped (failed ones too, unless
    --retry-failed). Ctrl-C finishes the shard in hand.
    """
    from flows.children import stop_signals_interrupt
    from prior_extraction.captioners import (
        CaptionerError,
        CaptionerOptions,
        build_captioner,
        default_batch_size,
    )
    from prior_extraction.captioners.prompts import PromptError, resolve_prompt
    from prior_extraction.parsing import CaptionParser, ParserWorkerError
    from prior_extraction.run import (
        ExtractionConfig,
        ExtractionConfigError,
        ImageCollisionError,
        parse_partition,
        require_own_images,
        require_undamaged,
        run_extraction,
        select_items,
    )
    from prior_extraction.sources import SourceError, build_source
    from storage import PriorStore, StoreError

    _check_numbers(shard_size, batch_size, limit, max_new_tokens, parse_processes)
    if captioner == "transformers" and device is not None:
        require_device("--device", device)
    require_at_least("--tensor-parallel-size", tensor_parallel_size, 1)
    if tensor_parallel_size > 1 and captioner != "vllm":
        typer.echo("error: --tensor-parallel-size needs --captioner vllm", err=True)
        raise typer.Exit(2)
    with stop_signals_interrupt():  # SIGTERM while models load ends as Ctrl-C does
        try:
            source = build_source(images, manifest, dataset, data_root, dataset_name)
            config = ExtractionConfig(
                batch_size=batch_size or default_batch_size(captioner, shard_size),
                shard_size=shard_size,
                limit=limit,
                prior_set_name=name,
                partition=parse_partition(partition),
                show_progress=progress,
                retry_failed=retry_failed,
            )
            if PriorStore.exists(store):  # refuse a store unfit for the run before a model loads
                existing = PriorStore(store)
                require_undamaged(existing)
                require_own_images(existing, select_items(source.items(), config.partition, limit))
            options = CaptionerOptions(
                model=model,
                prompt=resolve_prompt(prompt),
                captions=captions,
                max_new_tokens=max_new_tokens,
                prompt_format=prompt_format,
                device=device,
                engine_args={"tensor_parallel_size": tensor_parallel_size},
            )
            chosen = build_captioner(captioner, options)
            _report_unmatched_captions(chosen, source)
            prior_store = PriorStore(store)
            parser = CaptionParser(n_process=parse_processes)
            try:
                summary = run_extraction(source, chosen, parser, prior_store, config)
            except KeyboardInterrupt:
                typer.echo(
                    "interrupted: the shard in hand was abandoned; run the same command to resume",
                    err=True,
                )
                raise typer.Exit(INTERRUPTED_EXIT_CODE) from None
            finally:
                parser.close()
        except ParserWorkerError as error:
            typer.echo(
                f"error: {error}; the shards written are kept, run the same command to resume",
                err=True,
            )
            raise typer.Exit(1) from error
        except ImageCollisionError as error:
            fix = "another --store" if dataset else "another --dataset-name"
            typer.echo(f"error: {error}; give this source {fix}", err=True)
            raise typer.Exit(2) from error
        except (
            SourceError,
            CaptionerError,
            PromptError,
            ExtractionConfigError,
            StoreError,
        ) as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from error
        except KeyboardInterrupt:
            typer.echo("interrupted before the first shard; nothing was written", err=True)
            raise typer.Exit(INTERRUPTED_EXIT_CODE) from None
    print_summary(summary, prior_store.root)
    if summary.interrupted:
        raise typer.Exit(INTERRUPTED_EXIT_CODE)
    if compact and config.partition[1] == 1:
        compact_prior_set(prior_store, summary.prior_set_id)


def _check_numbers(
    shard_size: int,
    batch_size: int | None,
    limit: int | None,
    max_new_tokens: int,
    parse_processes: int,
) -> None:
    """Each count option checked under its own name, before anything loads."""
    require_at_least("--shard-size", shard_size, 1)
    if batch_size is not None:
        require_at_least("--batch-size", batch_size, 1)
    if limit is not None:
        require_at_least("--limit", limit, 0)
    require_at_least("--max-new-tokens", max_new_tokens, 1)
    require_at_least("--parse-processes", parse_processes, 1)


def _report_unmatched_captions(captioner: Captioner, source: ImageSource) -> None:
    """Warn about captions (of the file captioner) whose id names no image of the source."""
    from prior_extraction.captioners.file import FileCaptioner

    if not isinstance(captioner, FileCaptioner):
        return
    unmatched = captioner.ids_without_image(item.image_id for item in source.items())
    if unmatched:
        shown = ", ".join(repr(image_id) for image_id in unmatched[:FIRST_SHOWN])
        typer.echo(
            f"warning: {len(unmatched)} captions in {captioner.path} name no image of "
            f"{source.describe()} (first: {shown}); they are not used",
            err=True,
        )


def compact_prior_set(store: PriorStore, prior_set_id: str) -> None:
    """Compact the run's prior set; if that fails the priors are still saved, so say how to
    finish it and exit 1."""
    from storage import ConcurrentWriteError, StoreError

    typer.echo(f"compacting prior set {prior_set_id} ...")
    try:
        report = store.compact(prior_set_id)
    except (StoreError, ConcurrentWriteError, OSError) as error:
        typer.echo(
            f"error: compaction failed ({error}); the priors are saved, finish it with: "
            f"llmformer priors compact --store {store.root} --prior-set {prior_set_id}",
            err=True,
        )
        raise typer.Exit(1) from error
    typer.echo(f"compacted {report.files_before} files into {report.files_after}")


def _print_failures(summary: ExtractionSummary, store_root: Path | str) -> None:
    """The run's first failures, one line each (file, stage, error class: message), and the
    query that lists them all."""
    typer.echo(f"first {len(summary.first_failures)} of {summary.failed} failures:")
    for failure in summary.first_failures:
        typer.echo(f"  {failure.path} ({failure.stage}) {failure.error_class}: {failure.message}")
    sql = (
        "SELECT path, stage, error_class, message FROM failures "
        f"WHERE prior_set_id = '{summary.prior_set_id}'"
    )
    typer.echo(f'all failures: llmformer priors query --store {store_root} "{sql}"')
    typer.echo("redo them, once fixed, with the same command and --retry-failed")


def print_summary(summary: ExtractionSummary, store_root: Path | str) -> None:
    """One table: done, already there, failed, speed; the first failures and how to list and
    retry all; and how to resume when interrupted."""
    table = Table(title=f"prior set {summary.prior_set_id}", show_header=False)
    table.add_row("images in source", str(summary.total))
    table.add_row("done now", str(summary.captioned))
    table.add_row("already there", str(summary.already_done))
    table.add_row("failed", str(summary.failed))
    if summary.retried:
        table.add_row("retried (failed before)", str(summary.retried))
    table.add_row("no objects", str(summary.without_objects))
    table.add_row("speed", f"{summary.images_per_s:.1f} images/s in {summary.seconds:.1f} s")
    console = Console()
    console.print(table)
    if summary.first_failures:
        _print_failures(summary, store_root)
    if summary.interrupted:
        print(
            f"interrupted: {summary.remaining} images left; run the same command to resume",
            file=sys.stderr,
        )
