"""Property: whatever priors go into a shard come back unchanged from read_priors."""

from __future__ import annotations

import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage import ImagePriors, PriorSetSpec, PriorStore

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@st.composite
def image_priors(draw: st.DrawFn, image_id: str) -> ImagePriors:
    objects = draw(
        st.lists(
            st.fixed_dictionaries({"name": TEXT, "span": TEXT, "count": st.integers(1, 1000)}),
            max_size=5,
        )
    )
    indices = st.integers(0, len(objects) - 1) if objects else st.nothing()
    attributes = draw(
        st.lists(
            st.fixed_dictionaries({"object": indices, "value": TEXT, "kind": TEXT}),
            max_size=4 if objects else 0,
        )
    )
    relations = draw(
        st.lists(
            st.fixed_dictionaries({"subject": indices, "predicate": TEXT, "object": indices}),
            max_size=4 if objects else 0,
        )
    )
    return ImagePriors(image_id, draw(TEXT), objects, attributes, relations)


@st.composite
def shards(draw: st.DrawFn) -> list[ImagePriors]:
    ids = draw(st.lists(TEXT, min_size=1, max_size=6, unique=True))
    return [draw(image_priors(image_id)) for image_id in ids]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shard=shards())
def test_priors_round_trip_exactly(shard: list[ImagePriors]) -> None:
    with tempfile.TemporaryDirectory() as root:
        store = PriorStore(root)
        prior_set = store.register_prior_set(PriorSetSpec("file", "m", "p", {}, "parser", "1"))
        store.write_shard(prior_set, "demo", "train", "shard", [], shard, [])
        read = store.read_priors(prior_set, [priors.image_id for priors in shard])
        assert read == {priors.image_id: priors for priors in shard}
