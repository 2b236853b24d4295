"""Fixtures for the store tests: a fresh store, a registered prior set and a small shard."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage import FailureRecord, ImagePriors, ImageRecord, PriorSetSpec, PriorStore

SPEC = PriorSetSpec(
    captioner="file",
    model="llava-hf/llava-1.5-7b-hf",
    prompt="Describe the image.",
    sampling={"temperature": 0.0, "max_tokens": 128},
    parser="llmformer-spacy-rules",
    parser_version="1",
    name="test set",
)


def red_car_priors(image_id: str) -> ImagePriors:
    """'a red car on the road': two objects, one attribute, one relation."""
    return ImagePriors(
        image_id=image_id,
        caption="A red car on the road.",
        objects=[
            {"name": "car", "span": "A red car", "count": 1},
            {"name": "road", "span": "the road", "count": 1},
        ],
        attributes=[{"object": 0, "value": "red", "kind": "color"}],
        relations=[{"subject": 0, "predicate": "on", "object": 1}],
    )


def image(image_id: str, status: str = "ok") -> ImageRecord:
    return ImageRecord(image_id, f"images/{image_id}.jpg", 640, 480, "ab" * 32, status)


def failure(image_id: str) -> FailureRecord:
    return FailureRecord(
        image_id, f"images/{image_id}.jpg", "decode", "UnidentifiedImageError", "x"
    )


@pytest.fixture
def store(tmp_path: Path) -> PriorStore:
    return PriorStore(tmp_path / "store")


@pytest.fixture
def prior_set(store: PriorStore) -> str:
    return store.register_prior_set(SPEC)


@pytest.fixture
def write_demo_shard(store: PriorStore, prior_set: str):
    """Write a shard of `ids` into dataset demo: priors for all but the last id, which fails."""

    def write(shard: str, ids: list[str], split: str = "train") -> None:
        *good, bad = ids
        store.write_shard(
            prior_set,
            "demo",
            split,
            shard,
            images=[image(i) for i in good] + [image(bad, "failed")],
            priors=[red_car_priors(i) for i in good],
            failures=[failure(bad)],
        )

    return write


@pytest.fixture
def make_priors():
    """The 'red car on the road' priors for a given image id."""
    return red_car_priors


@pytest.fixture
def spec() -> PriorSetSpec:
    return SPEC
