"""Evaluations joined with the priors behind them, for `llmformer priors report`: which evaluation
to report on, and the rows of its tables, read from the views of `views.sql` over `eval_images`.

An evaluation is one checkpoint (run, config, prior set, vocabulary mode) on one benchmark; a
report covers every benchmark one checkpoint was evaluated on.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

EVALUATION_KEY = ("run", "checkpoint", "config", "prior_set_id", "vocabulary_free")
"""The columns that name one checkpoint's evaluation in every eval view."""


class NoEvaluationError(LookupError):
    """The store holds no per-image evaluation that the filter matches."""


@dataclass(frozen=True)
class ReportFilter:
    """What a report covers: the newest evaluation, or that of `checkpoint` (a checkpoint path
    or a run name as `eval_images` stores them), on every benchmark or only `dataset` (a
    benchmark's short name or the store's dataset name); `worst` images are listed."""

    checkpoint: str | None = None
    dataset: str | None = None
    worst: int = 20


@dataclass(frozen=True)
class ReportTables:
    """Everything a report shows, as Arrow tables; `evaluation` names the evaluation chosen."""

    evaluation: dict
    class_iou: pa.Table
    prior_recall: pa.Table
    worst_images: pa.Table
    comparison: pa.Table


def _chosen(table: str = "") -> str:
    """SQL true for the rows of the chosen evaluation (`table.` qualifies the columns)."""
    prefix = f"{table}." if table else ""
    return " AND ".join(
        f"{prefix}{column} IS NOT DISTINCT FROM ${column}" for column in EVALUATION_KEY
    )


def _in_dataset(table: str = "") -> str:
    """SQL true for rows of the `$dataset` benchmark (short or store name), or all if NULL."""
    prefix = f"{table}." if table else ""
    return f"($dataset IS NULL OR {prefix}benchmark = $dataset OR {prefix}dataset = $dataset)"


_KEY = ", ".join(EVALUATION_KEY)
_CHOSEN = _chosen()
_DATASET = _in_dataset()
_MATCHES = f"($checkpoint IS NULL OR checkpoint = $checkpoint OR run = $checkpoint) AND {_DATASET}"

_NEWEST = f"""
    SELECT {_KEY}
    FROM eval_images WHERE {_MATCHES}
    GROUP BY ALL ORDER BY max(created_at) DESC, run LIMIT 1"""

_CLASS_IOU = f"""
    SELECT c.benchmark, c.class_index, c.class_name, c.gt_images, c.iou,
           h.named_images, h.named_iou, h.unnamed_images, h.unnamed_iou
    FROM eval_class_iou AS c
    JOIN class_iou_by_prior_hit AS h USING ({_KEY}, benchmark, class_index)
    WHERE {_chosen("c")} AND {_in_dataset("c")}
    ORDER BY c.benchmark, c.gt_images DESC, c.class_index"""

_PRIOR_RECALL = f"""
    SELECT prior_set_id, dataset, images, gt_classes, named_gt_classes, recall,
           mean_image_recall, named_classes, named_present, precision, unmatched_objects
    FROM prior_recall
    WHERE dataset IN (
        SELECT DISTINCT dataset FROM eval_images WHERE {_CHOSEN} AND {_DATASET}
    )
    ORDER BY dataset, prior_set_id"""

_WORST_IMAGES = f"""
    WITH worst AS (
        SELECT benchmark, dataset, prior_set_id, image_id, classes, miou
        FROM eval_image_iou WHERE {_CHOSEN} AND {_DATASET}
        ORDER BY miou, benchmark, image_id LIMIT $worst
    ),
    truth AS (
        SELECT prior_set_id, dataset, image_id,
               string_agg(class_name, ', ' ORDER BY class_index) AS gt_classes,
               string_agg(class_name, ', ' ORDER BY class_index) FILTER (WHERE NOT named)
                   AS missed
        FROM prior_hits
        GROUP BY ALL
    ),
    named AS (
        SELECT prior_set_id, dataset, image_id,
               string_agg(DISTINCT name, ', ' ORDER BY name) AS objects
        FROM objects
        GROUP BY ALL
    ),
    paths AS (SELECT DISTINCT prior_set_id, dataset, image_id, path FROM images)
    SELECT w.benchmark, w.image_id, w.miou, w.classes, t.gt_classes,
           coalesce(t.missed, '') AS missed, coalesce(n.objects, '') AS objects,
           coalesce(c.caption, '') AS caption, p.path
    FROM worst AS w
    LEFT JOIN truth AS t USING (prior_set_id, dataset, image_id)
    LEFT JOIN named AS n USING (prior_set_id, dataset, image_id)
    LEFT JOIN captions AS c USING (prior_set_id, dataset, image_id)
    LEFT JOIN paths AS p USING (prior_set_id, dataset, image_id)
    ORDER BY w.miou, w.benchmark, w.image_id"""

_COMPARISON = f"""
    SELECT run, prior_set_id, vocabulary_free, benchmark, images, miou, named_miou, unnamed_miou,
           recall, precision, checkpoint, evaluated_at
    FROM eval_summary WHERE {_DATASET}
    ORDER BY benchmark, evaluated_at, run"""


def newest_evaluation(connection: duckdb.DuckDBPyConnection, where: ReportFilter) -> dict:
    """The key of the newest evaluation `where` matches; `NoEvaluationError` if there is none."""
    values = {"checkpoint": where.checkpoint, "dataset": where.dataset}
    rows = connection.sql(_NEWEST, params=values).fetchall()
    if not rows:
        wanted = " and ".join(
            f"{name} {value!r}"
            for name, value in (("checkpoint", where.checkpoint), ("dataset", where.dataset))
            if value is not None
        )
        raise NoEvaluationError(
            "the store holds no per-image evaluation"
            + (f" of {wanted}" if wanted else "")
            + "; run `llmformer eval ... --store STORE` first"
        )
    return dict(zip(EVALUATION_KEY, rows[0], strict=True))


def report_tables(connection: duckdb.DuckDBPyConnection, where: ReportFilter) -> ReportTables:
    """The tables of the report on the evaluation `where` picks (see `ReportFilter`)."""
    evaluation = newest_evaluation(connection, where)
    chosen = {**evaluation, "dataset": where.dataset}

    def read(sql: str, **extra) -> pa.Table:
        values = {**chosen, **extra}
        parameters = {key: value for key, value in values.items() if f"${key}" in sql}
        return connection.sql(sql, params=parameters).to_arrow_table()

    return ReportTables(
        evaluation=evaluation,
        class_iou=read(_CLASS_IOU),
        prior_recall=read(_PRIOR_RECALL),
        worst_images=read(_WORST_IMAGES, worst=where.worst),
        comparison=read(_COMPARISON),
    )
