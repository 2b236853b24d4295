# The first stage of the demo model (llmformer_tiny_demo.py): the same model and recipe without
# the prior path, i.e. a Mask2Former-style open-vocabulary decoder with the CLIP-aligned
# classifier. The second stage trains only the prior path on top of it.
_base_ = ["./llmformer_tiny_demo.py", "./_base_/models/prior_free_head.py"]
prior_free_config = None
model = dict(decode_head={{_base_.prior_free_head}}, train_prior_path_only=False)
