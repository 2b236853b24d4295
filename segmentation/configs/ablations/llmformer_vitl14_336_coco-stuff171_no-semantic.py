# Ablation: semantic attention off (queries no longer cross-attend to object/attribute priors).
_base_ = "../llmformer_vitl14_336_coco-stuff171.py"
model = dict(decode_head=dict(use_semantic_attention=False))
