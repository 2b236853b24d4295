"""Stage 2: the LLMFormer MMSegmentation plugin (models, datasets, transforms, metrics, configs)."""
