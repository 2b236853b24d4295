"""LLMFormer's registered model components: backbone, head, segmentor, vocabulary hook."""

from segmentation.models.llmformer_head import HeadInputs, HeadOutputs, LLMFormerHead
from segmentation.models.prior_encoder import PriorEncoder, PriorTensors
from segmentation.models.segmentor import LLMFormer
from segmentation.models.vit_adapter import CLIPViTAdapter
from segmentation.models.vocabulary_hook import VocabularyHook

__all__ = [
    "CLIPViTAdapter",
    "HeadInputs",
    "HeadOutputs",
    "LLMFormer",
    "LLMFormerHead",
    "PriorEncoder",
    "PriorTensors",
    "VocabularyHook",
]
