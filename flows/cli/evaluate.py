"""`llmformer eval CONFIG CHECKPOINT`: zero-shot mIoU and Open-mIoU on the benchmarks, one table.

Under torchrun with `--launcher pytorch` each process tests a share of the images; rank 0 prints
the table and writes the files and store rows, which equal a one-process evaluation's.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from flows.cli.train import LauncherOption

if TYPE_CHECKING:
    from storage import PriorStore


def evaluate(
    config: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Experiment config.")],
    checkpoint: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Checkpoint.")],
    datasets: Annotated[
        str,
        typer.Option(help="Comma-separated: a847, pc459, a150, pc59, voc20, voc21, coco171, demo."),
    ] = "a847,pc459,a150,pc59,voc20",
    data_root: Annotated[Path, typer.Option(help="Folder holding the prepared datasets.")] = Path(
        "data/datasets"
    ),
    work_dir: Annotated[Path, typer.Option(help="Logs and the table files go here.")] = Path(
        "work_dirs/eval"
    ),
    store: Annotated[
        Path | None,
        typer.Option(
            help="Prior store: add a row per dataset to eval_results and the per-image class "
            "counts to eval_images (joined with the priors by the prior_hits views)."
        ),
    ] = None,
    no_vocab: Annotated[
        bool,
        typer.Option("--no-vocab", help="Vocabulary-free: classify against each image's priors."),
    ] = False,
    run: Annotated[
        str | None,
        typer.Option(
            "--run",
            "--run-name",
            help="Name of this evaluation in the store (--run-name under torchrun, whose own "
            "parser takes --run for its --run-path).",
        ),
    ] = None,
    cfg_options: Annotated[
        list[str] | None, typer.Option(help="Config overrides KEY=VALUE (repeatable).")
    ] = None,
    save_predictions: Annotated[
        bool, typer.Option(help="Save predicted label maps under WORK_DIR/<dataset>/predictions.")
    ] = False,
    launcher: LauncherOption = None,
) -> None:
    """Evaluate a checkpoint on each dataset; print the table and write eval.md and eval.csv."""
    from mmengine.dist import is_main_process

    from segmentation.evaluation.run import EvalRequest, evaluate_checkpoint

    prior_store = None if store is None else _open_existing_store(store)
    keys = tuple(key.strip() for key in datasets.split(",") if key.strip())
    request = EvalRequest(
        config,
        checkpoint,
        keys,
        data_root,
        work_dir,
        no_vocab,
        run,
        tuple(cfg_options or ()),
        save_predictions,
        launcher,
    )
    try:
        table = evaluate_checkpoint(request)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(2) from error
    if not is_main_process():
        return
    console = Console()
    console.print(table.to_rich())
    markdown, csv_path = table.write(work_dir)
    console.print(f"written: {markdown}, {csv_path}")
    if prior_store is not None:
        _store_results(table, prior_store, store, console)


def _open_existing_store(store: Path) -> PriorStore:
    """An existing prior store, opened before the evaluation: a mistyped path would otherwise
    become a new, empty store that the results land in, away from their priors."""
    from storage import PriorStore, StoreError

    try:
        return PriorStore(store, create=False)
    except StoreError as error:
        print(f"error: --store: {error}", file=sys.stderr)
        raise typer.Exit(2) from error


def _store_results(table, prior_store: PriorStore, store: Path, console: Console) -> None:
    """Add the table to eval_results, each dataset's per-image class counts to eval_images and
    its class names (which the prior_hits views match the priors against) to class_names."""
    from storage import EvalImageClass, EvalRun

    prior_store.write_eval_results(table.store_rows())
    console.print(f"{len(table.rows)} rows added to eval_results in {store}")
    for detail in table.details:
        prior_store.write_class_names(detail.dataset, detail.synonyms)
    for evaluation, rows in table.image_rows():
        counts = [EvalImageClass(**row) for row in rows]
        path = prior_store.write_eval_images(EvalRun(**evaluation), counts)
        console.print(f"{len(counts)} per-image class rows written to {path}")
