"""Serve both deployments from one process: `extract-priors/default` and `train-segmenter/default`.

`limit=1` runs one flow at a time, so two GPU jobs never overlap; each run is a subprocess, so
the GPU memory it held is released when it ends. Run: `python -m flows.serve` (needs
PREFECT_API_URL; `llmformer server start` prints it). The runner works in a supervised child
process group: SIGTERM or SIGINT ends it, with its flow runs, within `SHUTDOWN_GRACE_S` seconds,
even when the Prefect server went away first and the runner would keep retrying it.
"""

from __future__ import annotations

import sys

DEPLOYMENT_NAME = "default"
SHUTDOWN_GRACE_S = 8.0
_SERVE_HERE = "--in-this-process"


def serve_deployments() -> None:
    """Register both deployments and poll for their runs until interrupted."""
    from prefect import serve

    from flows.extract import extract_priors
    from flows.train import train_segmenter

    serve(
        extract_priors.to_deployment(name=DEPLOYMENT_NAME),
        train_segmenter.to_deployment(name=DEPLOYMENT_NAME),
        limit=1,
    )


def main(arguments: list[str]) -> int:
    """Serve in a supervised child (or, with `--in-this-process`, here); returns the status."""
    from flows.children import run_supervised

    if arguments == [_SERVE_HERE]:
        serve_deployments()
        return 0
    return run_supervised([sys.executable, "-m", "flows.serve", _SERVE_HERE], SHUTDOWN_GRACE_S)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
