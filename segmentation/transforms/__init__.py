"""Pipeline transforms of the LLMFormer plugin."""

from segmentation.transforms.priors import LoadPriors, PackLLMFormerInputs, PriorGraph

__all__ = ["LoadPriors", "PackLLMFormerInputs", "PriorGraph"]
