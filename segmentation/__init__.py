"""Stage 2: the LLMFormer MMSegmentation plugin (models, datasets, transforms, metrics, configs)."""

from segmentation import models, text, training, transforms  # noqa: F401  (registers them in MMSeg)
