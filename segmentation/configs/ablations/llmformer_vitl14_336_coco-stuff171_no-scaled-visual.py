# Ablation: scaled visual attention off (Mask2Former's one level per layer, no scale scores).
_base_ = "../llmformer_vitl14_336_coco-stuff171.py"
model = dict(decode_head=dict(use_scaled_visual_attention=False))
