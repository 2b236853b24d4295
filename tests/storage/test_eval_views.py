"""eval_images and the views that join an evaluation with its priors, on hand-computed counts.

Dataset "demo" has classes background, car (synonym automobile), road, person. Image a's
caption names car and road; b's names car and road; c's names an automobile and a tree.

    image  class   gt  pred  inter   named by the priors
    a      car     10     8      6   yes
    a      road    20    20     15   yes
    a      person   5     0      0   no
    b      car      4     6      4   yes
    b      person   0     3      0   no
    c      car      0     2      0   yes (automobile)
    c      road     8     4      4   no
"""

from __future__ import annotations

import dataclasses

import pytest

from storage import (
    EvalImageClass,
    EvalRun,
    ImagePriors,
    PriorStore,
    StoreError,
)
from storage.evaluations import NoEvaluationError, ReportFilter, report_tables

CLASSES = [["background"], ["car", "automobile"], ["road"], ["person"]]
COUNTS = [
    ("a", 1, 10, 8, 6),
    ("a", 2, 20, 20, 15),
    ("a", 3, 5, 0, 0),
    ("b", 1, 4, 6, 4),
    ("b", 3, 0, 3, 0),
    ("c", 1, 0, 2, 0),
    ("c", 2, 8, 4, 4),
]
OBJECTS = {"a": ["car", "road"], "b": ["car", "road"], "c": ["automobile", "tree"]}


def priors(image_id: str) -> ImagePriors:
    names = OBJECTS[image_id]
    objects = [{"name": name, "span": f"a {name}", "count": 1} for name in names]
    return ImagePriors(image_id, f"{image_id}: a {' and a '.join(names)}.", objects)


def counts(rows=COUNTS) -> list[EvalImageClass]:
    return [
        EvalImageClass(image, index, CLASSES[index][0], gt, pred, inter)
        for image, index, gt, pred, inter in rows
    ]


@pytest.fixture
def evaluated(store: PriorStore, prior_set: str) -> EvalRun:
    store.write_shard(prior_set, "demo", "val", "s0", [], [priors(i) for i in "abc"], [])
    store.write_class_names("demo", CLASSES)
    run = EvalRun("r1", "demo", "demo", "cfg.py", "ck1.pth", prior_set)
    store.write_eval_images(run, counts())
    return run


def query(store: PriorStore, sql: str) -> list[tuple]:
    with store.connect() as connection:
        return connection.sql(sql).fetchall()


def test_eval_class_iou_sums_the_images(store, evaluated):
    rows = query(
        store,
        "SELECT class_name, gt_images, gt_pixels, pred_pixels, intersection, iou "
        "FROM eval_class_iou ORDER BY class_index",
    )
    assert rows == [
        ("car", 2, 14, 16, 10, pytest.approx(100 * 10 / 20)),
        ("road", 2, 28, 24, 19, pytest.approx(100 * 19 / 33)),
        ("person", 1, 5, 3, 0, 0.0),
    ]


def test_prior_hits_mark_each_ground_truth_class_named_or_not(store, evaluated):
    rows = query(store, "SELECT image_id, class_name, named FROM prior_hits ORDER BY ALL")
    assert rows == [
        ("a", "car", True),
        ("a", "person", False),
        ("a", "road", True),
        ("b", "car", True),
        ("c", "road", False),
    ]


def test_class_iou_by_prior_hit_splits_the_images(store, evaluated):
    rows = query(
        store,
        "SELECT class_name, named_images, named_iou, unnamed_images, unnamed_iou "
        "FROM class_iou_by_prior_hit ORDER BY class_index",
    )
    assert rows == [
        ("car", 3, pytest.approx(100 * 10 / 20), 0, None),
        ("road", 1, pytest.approx(100 * 15 / 25), 1, pytest.approx(100 * 4 / 8)),
        ("person", 0, None, 2, 0.0),
    ]


def test_prior_recall_and_precision(store, prior_set, evaluated):
    [row] = query(store, "SELECT * FROM prior_recall")
    # 3 of 5 ground-truth pairs named; a 2/3, b 1/1, c 0/1; named pairs (a car, a road, b car,
    # b road, c car) of which a car, a road and b car are present; "tree" matches no class.
    assert row == (
        prior_set,
        "demo",
        3,
        5,
        3,
        pytest.approx(0.6),
        pytest.approx((2 / 3 + 1 + 0) / 3),
        5,
        3,
        pytest.approx(0.6),
        1,
    )


def test_the_same_evaluation_written_again_replaces_its_rows(store, evaluated):
    store.write_eval_images(evaluated, counts(COUNTS[:2]))
    assert query(store, "SELECT count(*) FROM eval_images") == [(2,)]
    store.write_eval_images(dataclasses.replace(evaluated, run="r2"), counts())
    assert query(store, "SELECT run, count(*) FROM eval_images GROUP BY run ORDER BY run") == [
        ("r1", 2),
        ("r2", 7),
    ]


def test_an_intersection_larger_than_a_count_is_refused(store, evaluated):
    with pytest.raises(StoreError, match=r"intersection outside 0\.\.min\(gt, pred\)"):
        store.write_eval_images(evaluated, counts([("a", 1, 3, 8, 4)]))
    assert query(store, "SELECT count(*) FROM eval_images") == [(7,)]


def test_report_tables_pick_the_newest_evaluation_and_list_the_worst_images(store, evaluated):
    older = dataclasses.replace(evaluated, run="r0", checkpoint="ck0.pth")
    store.write_eval_images(older, counts(COUNTS[:3]))
    with store.connect() as connection:
        newest = report_tables(connection, ReportFilter(worst=2))
        chosen = report_tables(connection, ReportFilter(checkpoint="ck0.pth"))
    assert newest.evaluation["run"] == "r0"
    assert chosen.class_iou.column("class_name").to_pylist() == ["car", "road", "person"]
    with store.connect() as connection:
        tables = report_tables(connection, ReportFilter(checkpoint="r1", dataset="demo"))
    worst = tables.worst_images.to_pylist()
    assert [(row["image_id"], round(row["miou"], 2)) for row in worst] == [
        ("c", 25.0),  # car 0, road 50
        ("b", 33.33),  # car 66.7, person 0
        ("a", 36.67),  # car 50, road 60, person 0
    ]
    assert [(row["missed"], row["objects"]) for row in worst] == [
        ("road", "automobile, tree"),
        ("", "car, road"),
        ("person", "car, road"),
    ]
    assert worst[0]["caption"] == "c: a automobile and a tree."
    comparison = tables.comparison.to_pylist()
    assert [(row["run"], row["images"]) for row in comparison] == [("r1", 3), ("r0", 1)]
    assert comparison[0]["miou"] == pytest.approx((50 + 100 * 19 / 33 + 0) / 3)
    assert comparison[0]["recall"] == pytest.approx(0.6)


def test_a_report_without_evaluations_names_the_filter(store, prior_set):
    with store.connect() as connection, pytest.raises(NoEvaluationError) as error:
        report_tables(connection, ReportFilter(checkpoint="ck9.pth"))
    assert str(error.value) == (
        "the store holds no per-image evaluation of checkpoint 'ck9.pth'; "
        "run `llmformer eval ... --store STORE` first"
    )
