"""`python -m flows.cli` runs the CLI (same as the `llmformer` console script)."""

from flows.cli import main

main()
