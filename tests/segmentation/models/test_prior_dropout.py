"""Prior dropout: what it takes away, how often, and that it draws nothing when off."""

from __future__ import annotations

import pytest
import torch

from segmentation.models.prior_dropout import PriorDropout, keep_objects
from segmentation.transforms.priors import PriorGraph

GRAPH = PriorGraph(
    objects=("dog", "sofa", "ball"),
    attributes=((0, "brown"), (1, "red"), (2, "small")),
    relations=((0, "on", 1), (2, "under", 1), (0, "near", 2)),
)


def test_keep_objects_keeps_what_touches_only_the_kept_objects_reindexed() -> None:
    kept = keep_objects(GRAPH, [0, 2])
    assert kept == PriorGraph(
        objects=("dog", "ball"),
        attributes=((0, "brown"), (1, "small")),
        relations=((0, "near", 1),),
    )


def test_images_and_objects_are_dropped_at_their_rates() -> None:
    torch.manual_seed(0)
    dropped = PriorDropout(image_prob=0.3, object_prob=0.5)([GRAPH] * 4000)
    emptied = sum(graph.is_empty for graph in dropped) / len(dropped)
    kept = [graph for graph in dropped if not graph.is_empty]
    objects = sum(len(graph.objects) for graph in kept) / (3 * len(kept))
    # an image also ends empty when all three objects drop: 0.3 + 0.7 * 0.5**3
    assert emptied == pytest.approx(0.3 + 0.7 * 0.125, abs=0.02)
    assert objects == pytest.approx(0.5 / (1 - 0.125), abs=0.02)


def test_without_dropout_graphs_pass_unchanged_and_nothing_is_drawn() -> None:
    torch.manual_seed(0)
    assert PriorDropout()([GRAPH, PriorGraph.EMPTY]) == [GRAPH, PriorGraph.EMPTY]
    after = torch.rand(())
    torch.manual_seed(0)
    assert after == torch.rand(())


@pytest.mark.parametrize("field", ["image_prob", "object_prob"])
def test_a_rate_outside_0_1_is_refused(field: str) -> None:
    with pytest.raises(ValueError, match=f"prior_dropout {field} must be in \\[0, 1\\), got 1.0"):
        PriorDropout(**{field: 1.0})


def test_the_segmentor_takes_prior_dropout_from_its_config(tiny) -> None:
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    init_default_scope("mmseg")
    cfg = tiny.model_cfg()
    cfg["prior_dropout"] = dict(image_prob=0.25)
    assert MODELS.build(cfg).prior_dropout == PriorDropout(image_prob=0.25)
    cfg["prior_dropout"] = dict(image_prob=0.25, objects=0.1)
    with pytest.raises(ValueError, match=r"unknown keys \['objects'\]; known: \['image_prob'"):
        MODELS.build(cfg)
