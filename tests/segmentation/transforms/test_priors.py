"""LoadPriors reads the priors of the images it loads from a real store, within a memory budget;
the packer carries them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segmentation.transforms.priors import LoadPriors, PackLLMFormerInputs, PriorGraph
from storage import FailureRecord, ImagePriors, ImageRecord, PriorSetSpec, PriorStore

DOG_ON_SOFA = {
    "objects": [
        {"name": "dog", "span": "a dog", "count": 1},
        {"name": "sofa", "span": "sofa", "count": 1},
    ],
    "attributes": [{"object": 0, "value": "brown", "kind": "color"}],
    "relations": [{"subject": 0, "predicate": "on", "object": 1}],
}


@pytest.fixture
def store_with_priors(tmp_path) -> tuple[str, str]:
    store = PriorStore(tmp_path / "store")
    spec = PriorSetSpec(
        "file", "demo-captions", "Describe the image.", {}, "llmformer-spacy-rules", "1"
    )
    prior_set_id = store.register_prior_set(spec)
    images = [
        ImageRecord(i, f"/data/{i}", 64, 64, None, "ok") for i in ("train/0.png", "train/1.png")
    ]
    priors = [
        ImagePriors("train/0.png", "A brown dog on a sofa.", **DOG_ON_SOFA),
        ImagePriors("train/1.png", "Nothing much."),
    ]
    failures = [FailureRecord("train/2.png", "/data/train/2.png", "decode", "OSError", "truncated")]
    store.write_shard(prior_set_id, "demo", "train", "shard-0", images, priors, failures)
    return str(tmp_path / "store"), prior_set_id


def _results(image_id: str) -> dict:
    return {"img_id": image_id, "dataset_name": "demo", "split": "train"}


def test_prior_graph_follows_the_json_contract_and_drops_dangling_indices() -> None:
    record = {
        **DOG_ON_SOFA,
        "attributes": [*DOG_ON_SOFA["attributes"], {"object": 5, "value": "red", "kind": "color"}],
        "relations": [*DOG_ON_SOFA["relations"], {"subject": 0, "predicate": "near", "object": 9}],
    }
    graph = PriorGraph.from_record(record)
    assert graph == PriorGraph(("dog", "sofa"), ((0, "brown"),), ((0, "on", 1),))
    assert graph.attribute_phrases() == ["brown dog"]
    assert graph.relation_phrases() == ["dog on sofa"]
    assert PriorGraph.from_record(ImagePriors("x", "caption", **DOG_ON_SOFA)) == graph
    assert PriorGraph.from_record({}).is_empty


@pytest.fixture
def read_calls(monkeypatch) -> list[tuple[str, list[str]]]:
    """Every `PriorStore.read_priors` call, as (prior set, image ids)."""
    calls = []
    original = PriorStore.read_priors
    monkeypatch.setattr(
        PriorStore,
        "read_priors",
        lambda self, set_id, ids: calls.append((set_id, list(ids))) or original(self, set_id, ids),
    )
    return calls


def test_a_split_within_the_budget_is_read_in_one_query(store_with_priors, read_calls) -> None:
    store_root, prior_set_id = store_with_priors
    transform = LoadPriors(store_root, prior_set_id, max_cached_images=3)  # 2 done, 1 failed
    first = transform(_results("train/0.png"))["priors"]
    second = transform(_results("train/1.png"))["priors"]
    assert first == PriorGraph(("dog", "sofa"), ((0, "brown"),), ((0, "on", 1),))
    assert second == PriorGraph.EMPTY
    assert read_calls == [(prior_set_id, ["train/0.png", "train/1.png", "train/2.png"])]
    assert transform.num_missing == 0


def test_a_larger_split_is_read_image_by_image_keeping_at_most_the_budget(
    store_with_priors, read_calls
) -> None:
    store_root, prior_set_id = store_with_priors
    transform = LoadPriors(store_root, prior_set_id, max_cached_images=1)
    for image_id in ("train/0.png", "train/0.png", "train/1.png", "train/0.png"):
        transform(_results(image_id))
    assert [ids for _, ids in read_calls] == [["train/0.png"], ["train/1.png"], ["train/0.png"]]
    assert list(transform._recent) == ["train/0.png"]
    assert transform(_results("train/0.png"))["priors"].objects == ("dog", "sofa")


def test_images_without_priors_get_empty_priors_and_are_counted(store_with_priors) -> None:
    transform = LoadPriors(*store_with_priors)
    for image_id in ("train/2.png", "train/404.png"):
        assert transform(_results(image_id))["priors"] == PriorGraph.EMPTY
    assert transform.num_missing == 2


def test_load_priors_needs_a_prior_set_and_an_existing_store(tmp_path) -> None:
    with pytest.raises(ValueError, match="needs a store_root and a prior_set_id"):
        LoadPriors(str(tmp_path), None)
    with pytest.raises(ValueError, match="max_cached_images must be at least 1, got 0"):
        LoadPriors(str(tmp_path), "abc", max_cached_images=0)
    transform = LoadPriors(str(tmp_path / "nowhere"), "abc")
    with pytest.raises(Exception, match="no prior store"):
        transform(_results("train/0.png"))


def test_pack_puts_priors_and_store_keys_in_the_data_sample() -> None:
    results = {
        "img": np.zeros((8, 8, 3), dtype=np.uint8),
        "gt_seg_map": np.zeros((8, 8), dtype=np.int64),
        "img_shape": (8, 8),
        "ori_shape": (8, 8),
        **_results("train/0.png"),
        "priors": DOG_ON_SOFA,
    }
    packed = PackLLMFormerInputs()(results)
    sample = packed["data_samples"]
    assert packed["inputs"].shape == (3, 8, 8)
    assert sample.priors == PriorGraph.from_record(DOG_ON_SOFA)
    assert (sample.img_id, sample.dataset_name, sample.split) == ("train/0.png", "demo", "train")
    assert sample.gt_sem_seg.data.dtype == torch.int64


def test_pack_without_priors_packs_empty_priors() -> None:
    results = {"img": np.zeros((4, 4, 3), dtype=np.uint8), "img_shape": (4, 4), "ori_shape": (4, 4)}
    assert PackLLMFormerInputs()(results)["data_samples"].priors == PriorGraph.EMPTY


def test_attribute_words_leave_the_object_name_out() -> None:
    graph = PriorGraph(
        objects=("crescent", "ring", "star"), attributes=((0, "large"), (0, "orange"), (2, "red"))
    )
    assert graph.object_attribute_words() == ["large orange", "", "red"]
    assert graph.attribute_phrases() == ["large crescent", "orange crescent", "red star"]
