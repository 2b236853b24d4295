"""`llmformer priors query|stats|plot|compact|sets|upgrade|repair`: the prior store from a shell.

`--store` is a folder or an `s3://bucket/prefix` URL (credentials and endpoint from the usual
AWS variables); `--as-of` reads an older version of the store.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from flows.cli.checks import fail, require_output_folder

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from storage import PriorStore

QUERY_TIMEOUT_S = 300.0

StoreOption = Annotated[
    str, typer.Option("--store", help="The prior store: a folder or an s3://bucket/prefix URL.")
]
AsOfOption = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help="Read the store as it was: a version number (see `priors sets`) or an ISO time "
        "such as 2026-01-31T12:00:00+00:00.",
    ),
]
DatasetOption = Annotated[str | None, typer.Option("--dataset", help="Only this dataset.")]
PriorSetOption = Annotated[str | None, typer.Option("--prior-set", help="Only this prior set id.")]


class OutputFormat(StrEnum):
    """How `priors query` prints its rows."""

    table = "table"
    csv = "csv"
    json = "json"


def open_store(root: str | Path) -> PriorStore:
    from storage import PriorStore, StoreError

    try:
        return PriorStore(root, create=False)
    except StoreError as error:
        fail(str(error))


def parse_as_of(as_of: str | None) -> int | datetime | None:
    """`--as-of` as a version number or a time (a time without a zone is UTC)."""
    from datetime import UTC

    if as_of is None:
        return None
    if as_of.isdigit():
        return int(as_of)
    try:
        moment = datetime.fromisoformat(as_of)
    except ValueError:
        fail(f"--as-of must be a version number or an ISO time, got {as_of!r}")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _connect(
    store: PriorStore, memory_limit: str | None = None, as_of: str | None = None
) -> duckdb.DuckDBPyConnection:
    """The store's sandboxed connection over its latest version or the one `as_of` names."""
    import duckdb

    from storage import StoreError

    try:
        return store.connect(memory_limit, parse_as_of(as_of))
    except StoreError as error:
        fail(f"--as-of: {error}")
    except duckdb.Error:  # DuckDB reads the files' footers as it opens the views
        if damage := store.damage_error():
            fail(str(damage))
        raise


@contextmanager
def _reading(store: PriorStore) -> Iterator[None]:
    """Turn a read that failed on a damaged file into one line that points to `priors repair`."""
    import duckdb

    from storage.query import QueryError

    try:
        yield
    except (duckdb.Error, QueryError, OSError) as error:
        if damage := store.damage_error():
            fail(str(damage))
        if isinstance(error, QueryError):
            fail(str(error))
        raise


def _require_known_prior_set(store: PriorStore, prior_set: str | None) -> None:
    known = store.prior_set_ids()
    if prior_set is not None and prior_set not in known:
        listed = ", ".join(known) if known else "none yet"
        fail(f"unknown --prior-set {prior_set!r}; the store holds: {listed}")


def _rich_table(table: pa.Table, title: str | None = None) -> Table:
    view = Table(title=title)
    for name in table.column_names:
        justify = "right" if _is_number(table, name) else "left"
        view.add_column(name, justify=justify, no_wrap=name.endswith("_id"))
    for row in table.to_pylist():
        view.add_row(*("" if value is None else str(value) for value in row.values()))
    return view


def _is_number(table: pa.Table, column: str) -> bool:
    import pyarrow.types as types

    kind = table.schema.field(column).type
    return types.is_integer(kind) or types.is_floating(kind) or types.is_decimal(kind)


def _print(table: pa.Table, output: OutputFormat) -> None:
    if output is OutputFormat.table:
        Console().print(_rich_table(table))
    elif output is OutputFormat.csv:
        import pyarrow as pa
        import pyarrow.csv

        try:
            pyarrow.csv.write_csv(table, sys.stdout.buffer)
        except pa.ArrowException as error:
            fail(f"CSV cannot hold this result ({error}); use --format json")
        sys.stdout.buffer.flush()
    else:
        for row in table.to_pylist():
            typer.echo(json.dumps(row, default=str, ensure_ascii=False))


def query(
    sql: Annotated[str, typer.Argument(help="One SELECT over the store's views.")],
    store: StoreOption,
    output: Annotated[
        OutputFormat, typer.Option("--format", help="table, csv, or json (one object per line).")
    ] = OutputFormat.table,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Stop the query after this many seconds.")
    ] = QUERY_TIMEOUT_S,
    memory_limit: Annotated[
        str | None,
        typer.Option(
            "--memory-limit",
            help="Most memory the query may use, e.g. 8GB (default: the store connection's).",
        ),
    ] = None,
    as_of: AsOfOption = None,
) -> None:
    """Run one read-only SQL query over the store's tables and statistics views.

    The query reads one version of the store's tables and nothing else: no file, no URL, no
    extension.
    """
    from storage.query import QueryError, run_read_query

    if not 0 < timeout <= threading.TIMEOUT_MAX:  # nan and inf would never stop the query
        fail(f"--timeout must be a number of seconds more than 0, got {timeout:g}")
    prior_store = open_store(store)
    try:
        connection = _connect(prior_store, memory_limit, as_of)
    except QueryError as error:
        fail(f"--memory-limit: {error}")
    with _reading(prior_store):
        result = run_read_query(connection, sql, timeout)
    _print(result, output)


def stats(
    store: StoreOption,
    dataset: DatasetOption = None,
    prior_set: PriorSetOption = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Rows per statistic.")] = 20,
    as_of: AsOfOption = None,
) -> None:
    """Print object, attribute and relation frequencies, objects per image and class coverage."""
    from storage.stats import StatisticsFilter, statistics

    prior_store = open_store(store)
    _require_known_prior_set(prior_store, prior_set)
    connection = _connect(prior_store, as_of=as_of)
    where = StatisticsFilter(dataset=dataset, prior_set_id=prior_set, top=top)
    console = Console()
    with _reading(prior_store):
        tables = statistics(connection, where)
    for name, table in tables.items():
        console.print(_rich_table(table, title=name.replace("_", " ")))


def plot(
    store: StoreOption,
    out: Annotated[Path, typer.Option("--out", help="Folder for the PNG charts.")],
    dataset: DatasetOption = None,
    prior_set: PriorSetOption = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Bars per chart.")] = 20,
) -> None:
    """Draw PNG charts: top objects, attributes by kind, relation predicates, objects per image."""
    from storage.plots import plot_statistics
    from storage.stats import StatisticsFilter, statistics

    require_output_folder("--out", out)
    prior_store = open_store(store)
    _require_known_prior_set(prior_store, prior_set)
    connection = _connect(prior_store)
    where = StatisticsFilter(dataset=dataset, prior_set_id=prior_set, top=top)
    with _reading(prior_store):
        tables = statistics(connection, where)
    for path in plot_statistics(tables, out):
        typer.echo(str(path))


def compact(store: StoreOption, prior_set: PriorSetOption = None) -> None:
    """Merge small files (Delta's OPTIMIZE, one file at a time), then drop files no version of
    the last 7 days reads (VACUUM) and checkpoint the log."""
    from storage import StoreError

    prior_store = open_store(store)
    _require_known_prior_set(prior_store, prior_set)
    try:
        report = prior_store.compact(prior_set)
    except StoreError as error:
        fail(str(error))
    typer.echo(f"compacted {report.files_before} files into {report.files_after}")


def sets(store: StoreOption, as_of: AsOfOption = None) -> None:
    """List the prior sets with how many images, failures and priors each holds."""
    from storage.stats import prior_set_overview

    prior_store = open_store(store)
    connection = _connect(prior_store, as_of=as_of)
    title = f"prior sets (store version {as_of or prior_store.version()})"
    with _reading(prior_store):
        overview = prior_set_overview(connection)
    Console().print(_rich_table(overview, title=title))


def upgrade(store: StoreOption) -> None:
    """Bring a store written by an older llmformer to this release's schema version."""
    from storage import SCHEMA_VERSION, PriorStore, StoreError

    try:
        root = PriorStore.upgrade(store).root
    except StoreError as error:
        fail(str(error))
    typer.echo(f"the store at {root} is at schema version {SCHEMA_VERSION}")


def repair(store: StoreOption) -> None:
    """Move files that are missing or cut short to the store's quarantine folder and drop them
    and the rest of their shards from the store; the next `priors extract` redoes their images."""
    prior_store = open_store(store)
    damaged = prior_store.damaged_files()
    for found in damaged:
        typer.echo(f"damaged: {found}")
    if not damaged:
        typer.echo(f"no damaged files in {prior_store.root}")
        return
    report = prior_store.repair()
    typer.echo(
        f"moved {len(report.moved)} files to {report.quarantine}; "
        f"{report.images_undone} images are undone: run priors extract again to redo them"
    )
