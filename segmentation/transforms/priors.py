"""Pipeline transforms that carry an image's LLM priors from the prior store into its data sample.

`LoadPriors` reads the priors of the images it loads from the prior store, a whole small split at
once, a large one image by image, so a dataloader worker's memory does not grow with the split;
`PackLLMFormerInputs` puts them in `data_sample.priors`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from mmcv.transforms import BaseTransform
from mmengine.logging import MMLogger
from mmseg.datasets.transforms import PackSegInputs
from mmseg.registry import TRANSFORMS


@dataclass(frozen=True)
class PriorGraph:
    """An image's priors: object names, (object, attribute) pairs and (subject, predicate, object).

    Indices point into `objects`; entries whose indices fall outside are dropped on construction.
    """

    objects: tuple[str, ...] = ()
    attributes: tuple[tuple[int, str], ...] = ()
    relations: tuple[tuple[int, str, int], ...] = ()

    EMPTY: ClassVar[PriorGraph]

    @classmethod
    def from_record(cls, record: Mapping[str, Any] | Any) -> PriorGraph:
        """Build from the JSON contract (a dict or an object with objects/attributes/relations)."""

        def field(name: str) -> list:
            value = record.get(name) if isinstance(record, Mapping) else getattr(record, name, None)
            return list(value or [])

        objects = tuple(str(obj["name"]) for obj in field("objects"))
        in_range = range(len(objects))
        attributes = tuple(
            (int(a["object"]), str(a["value"]))
            for a in field("attributes")
            if int(a["object"]) in in_range
        )
        relations = tuple(
            (int(r["subject"]), str(r["predicate"]), int(r["object"]))
            for r in field("relations")
            if int(r["subject"]) in in_range and int(r["object"]) in in_range
        )
        return cls(objects, attributes, relations)

    @property
    def is_empty(self) -> bool:
        return not self.objects

    def attribute_phrases(self) -> list[str]:
        """Each attribute with the object it describes, e.g. "red car"."""
        return [f"{value} {self.objects[index]}" for index, value in self.attributes]

    def object_attribute_words(self) -> list[str]:
        """Each object's attributes without its name, e.g. "large red" ("" for none): what the
        name pointer matches a query on, so that it never matches on the name itself."""
        words: list[list[str]] = [[] for _ in self.objects]
        for index, value in self.attributes:
            words[index].append(value)
        return [" ".join(values) for values in words]

    def relation_phrases(self) -> list[str]:
        """Each relation as a short sentence, e.g. "dog on sofa"."""
        return [f"{self.objects[s]} {p} {self.objects[o]}" for s, p, o in self.relations]


PriorGraph.EMPTY = PriorGraph()


@TRANSFORMS.register_module()
class LoadPriors(BaseTransform):
    """Put the priors of `results["img_id"]` for one prior set into `results["priors"]`.

    Memory stays bounded by `max_cached_images` whatever the split's size: a (dataset, split) of
    at most that many images is read in one store query on first use and served from memory (a
    per-image query costs tens of milliseconds, as much as the tiny model's training step); a
    larger one is read image by image, the last `max_cached_images` kept. Images without priors
    get `PriorGraph.EMPTY` and are counted in `num_missing` (logged), so training and prediction
    go on and the gap stays visible.
    """

    def __init__(
        self,
        store_root: str,
        prior_set_id: str,
        max_cached_images: int = 20_000,
        log_every: int = 1000,
    ) -> None:
        if not store_root or not prior_set_id:
            raise ValueError(
                "LoadPriors needs a store_root and a prior_set_id: pass --cfg-options "
                "prior_store_root=STORE prior_set_id=ID (`llmformer priors sets` lists the ids)"
            )
        if max_cached_images < 1:
            raise ValueError(f"max_cached_images must be at least 1, got {max_cached_images}")
        self.store_root = store_root
        self.prior_set_id = prior_set_id
        self.max_cached_images = max_cached_images
        self.log_every = log_every
        self.num_missing = 0
        self._store = None
        self._whole_splits: dict[tuple[str, str], dict[str, PriorGraph] | None] = {}
        self._recent: OrderedDict[str, PriorGraph | None] = OrderedDict()

    def transform(self, results: dict) -> dict:
        image_id = str(results["img_id"])
        priors = self._priors(results.get("dataset_name"), results.get("split"), image_id)
        if priors is None:
            self._count_missing(image_id)
            priors = PriorGraph.EMPTY
        results["priors"] = priors
        return results

    def _priors(self, dataset: str | None, split: str | None, image_id: str) -> PriorGraph | None:
        key = (dataset or "", split or "")
        if key not in self._whole_splits:
            self._whole_splits[key] = self._read_split_if_small(dataset, split)
        whole = self._whole_splits[key]
        return whole.get(image_id) if whole is not None else self._read_image(image_id)

    def _read_split_if_small(self, dataset: str | None, split: str | None):
        """Every image's priors of a split that fits the budget; None for a larger one."""
        store = self._open_store()
        image_ids = store.done_image_ids(self.prior_set_id, dataset, split)
        if len(image_ids) > self.max_cached_images:
            return None
        records = store.read_priors(self.prior_set_id, sorted(image_ids)) if image_ids else {}
        return {str(i): PriorGraph.from_record(record) for i, record in records.items()}

    def _read_image(self, image_id: str) -> PriorGraph | None:
        """One image's priors from the store, or from the last `max_cached_images` read."""
        if image_id in self._recent:
            self._recent.move_to_end(image_id)
            return self._recent[image_id]
        record = self._open_store().read_priors(self.prior_set_id, [image_id]).get(image_id)
        priors = None if record is None else PriorGraph.from_record(record)
        self._recent[image_id] = priors
        if len(self._recent) > self.max_cached_images:
            self._recent.popitem(last=False)
        return priors

    def _open_store(self):
        if self._store is None:
            from storage import PriorStore

            self._store = PriorStore(self.store_root, create=False)
        return self._store

    def _count_missing(self, image_id: str) -> None:
        self.num_missing += 1
        if self.num_missing == 1 or self.num_missing % self.log_every == 0:
            MMLogger.get_current_instance().warning(
                f"no priors in prior set {self.prior_set_id} for image {image_id} "
                f"({self.num_missing} images without priors so far): using empty priors"
            )

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(store_root={self.store_root!r}, prior_set_id={self.prior_set_id!r})"


@TRANSFORMS.register_module()
class PackLLMFormerInputs(PackSegInputs):
    """`PackSegInputs` that also packs `priors` (empty when absent) and the image's store keys."""

    DEFAULT_META_KEYS = (
        "img_path",
        "seg_map_path",
        "ori_shape",
        "img_shape",
        "pad_shape",
        "scale_factor",
        "flip",
        "flip_direction",
        "reduce_zero_label",
        "img_id",
        "dataset_name",
        "split",
    )

    def __init__(self, meta_keys: tuple[str, ...] = DEFAULT_META_KEYS) -> None:
        super().__init__(meta_keys=meta_keys)

    def transform(self, results: dict) -> dict:
        packed = super().transform(results)
        priors = results.get("priors", PriorGraph.EMPTY)
        if not isinstance(priors, PriorGraph):
            priors = PriorGraph.from_record(priors)
        packed["data_samples"].priors = priors
        return packed
