# Baseline for every comparison: all three prior modules off, i.e. a Mask2Former-style
# open-vocabulary decoder on the same backbone, text encoder and recipe.
_base_ = "../llmformer_vitl14_336_coco-stuff171.py"
model = dict(
    decode_head=dict(
        use_semantic_attention=False,
        use_scaled_visual_attention=False,
        use_relation_attention=False,
    )
)
