# Ablation: relation attention off (plain query self-attention, no relation-graph bias).
_base_ = "../llmformer_vitl14_336_coco-stuff171.py"
model = dict(decode_head=dict(use_relation_attention=False))
