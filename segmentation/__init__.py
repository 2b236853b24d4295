"""Stage 2: the LLMFormer MMSegmentation plugin (models, datasets, transforms, metrics, configs)."""

from segmentation import (  # noqa: F401  (each sub-package registers its parts in MMSeg)
    datasets,
    evaluation,
    models,
    text,
    training,
    transforms,
)
