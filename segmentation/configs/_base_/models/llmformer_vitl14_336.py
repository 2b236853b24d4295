# LLMFormer at paper scale: CLIP ViT-L/14-336 (LLaVA-1.5's vision tower, frozen) + ViT-Adapter,
# a 6-layer deformable pixel decoder and a 9-layer prior-guided mask decoder (Mask2Former sizes:
# 100 queries, 256 wide, 8 heads, FFN 2048), classified against CLIP text embeddings.
# Checkpoint paths are local folders; see segmentation/README.md for where to get them.
custom_imports = dict(imports=["segmentation"], allow_failed_imports=False)

# Values also used by dataset configs are written out (MMEngine forbids a key in two bases):
# 65535 is segmentation.datasets.constants.IGNORE_INDEX, (640, 640) the training crop.
data_preprocessor = dict(
    type="SegDataPreProcessor",
    mean=[122.7709, 116.7460, 104.0937],  # CLIP's normalisation, in 0-255
    std=[68.5005, 66.6322, 70.3232],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=65535,
    size=(640, 640),
    test_cfg=dict(size_divisor=32),
)

model = dict(
    type="LLMFormer",
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type="CLIPViTAdapter",
        vision_tower=dict(
            vision_config=dict(
                hidden_size=1024,
                intermediate_size=4096,
                num_hidden_layers=24,
                num_attention_heads=16,
                image_size=336,
                patch_size=14,
                projection_dim=768,
                hidden_act="quick_gelu",
            ),
            # hidden_states indices; 23 is LLaVA's feature layer (the penultimate one)
            layer_indices=[6, 12, 18, 23],
            pretrained="checkpoints/llava-1.5-7b-hf",
        ),
        embed_dim=256,
        spm_inplanes=64,
        num_heads=8,
        num_points=4,
        ffn_ratio=2.0,
        add_vit_feature=True,
        norm_cfg=dict(type="GN", num_groups=32),
    ),
    decode_head=dict(
        type="LLMFormerHead",
        in_channels=[256, 256, 256, 256],
        channels=256,
        num_classes=171,  # the training vocabulary's size; any vocabulary at test time
        text_embed_dims=768,  # CLIP ViT-L/14 text projection
        num_queries=100,
        num_layers=9,
        num_heads=8,
        ffn_channels=2048,
        attention_dropout=0.0,
        pixel_decoder=dict(num_layers=6, num_heads=8, num_points=4, ffn_channels=1024),
        use_semantic_attention=True,
        use_scaled_visual_attention=True,
        use_relation_attention=True,
        void_class_weight=0.1,
        # LLM object names in the class score: logit + boost * (presence - 1); 0 turns it off
        prior_class_boost=0.0,
        # and through queries matched to object priors by their attribute words: name_pointer
        # (dict(weight=, floor=, loss_weight=); the head's default None is off)
        ignore_index=65535,
        align_corners=False,
        # The head passes every loss its avg_factor, so avg_non_ignore changes no value; it is set
        # only to keep mmseg's constructor from warning about its default on every run.
        loss_decode=[
            dict(
                type="CrossEntropyLoss",
                loss_name="loss_cls_ce",
                loss_weight=2.0,
                avg_non_ignore=True,
            ),
            dict(
                type="CrossEntropyLoss",
                use_sigmoid=True,
                loss_name="loss_mask_ce",
                loss_weight=5.0,
                avg_non_ignore=True,
            ),
            dict(
                type="DiceLoss",
                ignore_index=None,
                naive_dice=True,
                eps=1,
                loss_name="loss_mask_dice",
                loss_weight=5.0,
            ),
        ],
        train_cfg=dict(
            num_points=12544,
            oversample_ratio=3.0,
            importance_sample_ratio=0.75,
            assigner=dict(
                type="HungarianAssigner",
                match_costs=[
                    dict(type="ClassificationCost", weight=2.0),
                    dict(type="CrossEntropyLossCost", weight=5.0, use_sigmoid=True),
                    dict(type="DiceCost", weight=5.0, pred_act=True, eps=1.0),
                ],
            ),
        ),
    ),
    text_encoder=dict(type="CLIPTextTower", model_path="checkpoints/clip-vit-large-patch14-336"),
    # the CLIP-aligned classifier (FC-CLIP's ensemble): dict(checkpoint=, alpha=, beta=) or None
    clip_classifier=None,
    training_classes=None,  # the training vocabulary (names or a packaged list's name)
    train_cfg=dict(),
    test_cfg=dict(mode="slide", crop_size=(640, 640), stride=(426, 426), vocabulary_free=False),
)
