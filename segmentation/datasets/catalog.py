"""Short benchmark names (as the paper's tables use them) -> dataset class, store key, folder."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchmarkInfo:
    """Where a benchmark lives and how to build it: `folder` under the data root (VOC-20 and
    VOC-21 share one), MMSeg dataset `type`, store key `dataset_name`, evaluation `split`."""

    key: str
    type: str
    dataset_name: str
    folder: str
    split: str = "val"

    def dataset_cfg(self, data_root: str, pipeline: list[dict]) -> dict:
        """An MMSeg dataset config for the evaluation split under `data_root`."""
        return {
            "type": self.type,
            "data_root": f"{data_root}/{self.folder}",
            "split": self.split,
            "pipeline": pipeline,
            "test_mode": True,
        }


BENCHMARKS: dict[str, BenchmarkInfo] = {
    info.key: info
    for info in (
        BenchmarkInfo("coco171", "COCOStuff171Dataset", "coco_stuff_171", "coco_stuff_171"),
        BenchmarkInfo("a150", "ADE20K150Dataset", "ade20k_150", "ade20k_150"),
        BenchmarkInfo("a847", "ADE20K847Dataset", "ade20k_847", "ade20k_847"),
        BenchmarkInfo("pc59", "PascalContext59Dataset", "pascal_context_59", "pascal_context_59"),
        BenchmarkInfo(
            "pc459", "PascalContext459Dataset", "pascal_context_459", "pascal_context_459"
        ),
        BenchmarkInfo("voc20", "PascalVOC20Dataset", "pascal_voc_20", "pascal_voc"),
        BenchmarkInfo("voc21", "PascalVOC21Dataset", "pascal_voc_21", "pascal_voc"),
        BenchmarkInfo("demo", "LLMFormerDemoDataset", "demo", "demo"),
    )
}
PAPER_BENCHMARKS = ("a847", "pc459", "a150", "pc59", "voc20")


def benchmark(key: str) -> BenchmarkInfo:
    """Look a benchmark up by its short name, with the known names in the error."""
    try:
        return BENCHMARKS[key]
    except KeyError:
        raise ValueError(f"unknown dataset {key!r}; known: {', '.join(BENCHMARKS)}") from None
