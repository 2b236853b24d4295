"""Serve both deployments from one process: `extract-priors/default` and `train-segmenter/default`.

`limit=1` runs one flow at a time, so two GPU jobs never overlap; each run is a subprocess, so
the GPU memory it held is released when it ends. Run: `python -m flows.serve` (needs
PREFECT_API_URL; `llmformer server start` prints it).
"""

from __future__ import annotations

from prefect import serve

from flows.extract import extract_priors
from flows.train import train_segmenter

DEPLOYMENT_NAME = "default"


def main() -> None:
    """Register both deployments and poll for their runs until interrupted."""
    serve(
        extract_priors.to_deployment(name=DEPLOYMENT_NAME),
        train_segmenter.to_deployment(name=DEPLOYMENT_NAME),
        limit=1,
    )


if __name__ == "__main__":
    main()
