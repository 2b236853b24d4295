# No LLM prior reaches the decoder: the three prior modules, the class boost and the name pointer
# off, i.e. a Mask2Former-style open-vocabulary decoder. A config takes it as
#   _base_ = [..., "PATH/_base_/models/prior_free_head.py"]
#   model = dict(decode_head={{_base_.prior_free_head}})
prior_free_head = dict(
    use_semantic_attention=False,
    use_scaled_visual_attention=False,
    use_relation_attention=False,
    prior_class_boost=0.0,
    name_pointer=None,
)
