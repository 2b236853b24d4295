"""What the demo-world benchmarks share: stage 1 over a generated demo set (not a benchmark)."""

from __future__ import annotations

from pathlib import Path


def extract_priors(data_root: Path, store: Path) -> str:
    """Stage 1 over the demo set with the `file` captioner; returns the prior set id."""
    from prior_extraction.captioners.file import FileCaptioner
    from prior_extraction.parsing import CaptionParser
    from prior_extraction.run import ExtractionConfig, run_extraction
    from prior_extraction.sources import build_source
    from storage import PriorStore

    source = build_source(dataset="demo", data_root=data_root)
    captioner = FileCaptioner(data_root / "captions.jsonl")
    config = ExtractionConfig(show_progress=False)
    return run_extraction(
        source, captioner, CaptionParser(), PriorStore(store), config
    ).prior_set_id
