"""Stage 1 library: image sources, captioners, prompts and the caption parser. Knows no Prefect."""
