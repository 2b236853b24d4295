# The first stage of the demo model (llmformer_tiny_demo.py): the same model and recipe without
# the prior path (no prior modules, class boost or name pointer), i.e. a Mask2Former-style
# open-vocabulary decoder with the CLIP-aligned classifier. The second stage trains only the
# prior path on top of it.
_base_ = ["./llmformer_tiny_demo.py"]
prior_free_config = None
model = dict(
    decode_head=dict(
        use_semantic_attention=False,
        use_scaled_visual_attention=False,
        use_relation_attention=False,
        prior_class_boost=0.0,
        name_pointer=None,
    ),
    train_prior_path_only=False,
)
