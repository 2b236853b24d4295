# The paper's model: LLaVA-1.5's CLIP ViT-L/14-336 (frozen) + ViT-Adapter + prior-guided decoder,
# trained on COCO-Stuff-171 with SAN's recipe (60k iterations, batch 32 = 8 GPUs x 4), evaluated
# with sliding 640 windows. Two stages: the prior-free baseline (ablations/..._baseline.py) into
# WORK_DIR/prior_free, then only the prior path on top of it, so that the LLM's silence costs
# nothing (segmentation/README.md, Prior path). Priors come from a prior set in the store:
#   llmformer train THIS --cfg-options prior_store_root=STORE prior_set_id=ID
_base_ = [
    "./_base_/models/llmformer_vitl14_336.py",
    "./_base_/datasets/coco_stuff_171.py",
    "./_base_/default_runtime.py",
    "./_base_/schedules/san_60k.py",
]
prior_store_root = "data/store"
prior_set_id = None  # required: `llmformer priors sets` lists the ids
prior_free_config = "{{fileDirname}}/ablations/llmformer_vitl14_336_coco-stuff171_baseline.py"
# Open-vocabulary sources: the CLIP-aligned classifier (dense features of the frozen tower through
# CLIP ViT-L/14-336's own visual_projection; FC-CLIP's alpha 0.4 / beta 0.8) and the LLM's object
# names, as a log-prior on the class score and through the name pointer (segmentation/README.md).
model = dict(
    clip_classifier=dict(
        _delete_=True, checkpoint="checkpoints/clip-vit-large-patch14-336", alpha=0.4, beta=0.8
    ),
    training_classes="coco_stuff_171",
    decode_head=dict(prior_class_boost=5.0, name_pointer=dict()),
    train_prior_path_only=True,
)
load_priors = dict(type="LoadPriors", store_root=prior_store_root, prior_set_id=prior_set_id)
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadLabelMap"),
    load_priors,
    dict(type="RandomResize", scale=(2560, 640), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type="RandomCrop", crop_size=(640, 640), cat_max_ratio=0.75, ignore_index=65535),
    # no flips: a flip contradicts the left/right relations in the priors
    dict(type="PhotoMetricDistortion"),
    dict(type="PackLLMFormerInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=(2560, 640), keep_ratio=True),
    dict(type="LoadLabelMap"),
    load_priors,
    dict(type="PackLLMFormerInputs"),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
