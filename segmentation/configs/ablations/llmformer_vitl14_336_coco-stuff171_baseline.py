# Baseline for every comparison: no LLM prior reaches the model (the three prior modules, the
# prior class boost and the name pointer off), i.e. a Mask2Former-style open-vocabulary decoder
# with FC-CLIP's CLIP-aligned classifier on the same backbone, text encoder and recipe; and the
# first stage of the paper config, which trains its prior path on top of this model.
_base_ = ["../llmformer_vitl14_336_coco-stuff171.py", "../_base_/models/prior_free_head.py"]
prior_free_config = None
model = dict(decode_head={{_base_.prior_free_head}}, train_prior_path_only=False)
