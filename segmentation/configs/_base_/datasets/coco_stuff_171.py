# COCO-Stuff-171: the open-vocabulary training set (SAN-style 640 crops), validated on val2017.
_base_ = "./open_vocab_eval.py"
data_root = "data/datasets/coco_stuff_171"
crop_size = (640, 640)
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadLabelMap"),
    dict(type="RandomResize", scale=(2560, 640), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type="RandomCrop", crop_size=crop_size, cat_max_ratio=0.75, ignore_index=65535),
    # no flips: a flip contradicts the left/right relations in the priors
    dict(type="PhotoMetricDistortion"),
    dict(type="PackLLMFormerInputs"),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    dataset=dict(
        type="COCOStuff171Dataset", data_root=data_root, split="train", pipeline=train_pipeline
    ),
)
val_dataloader = dict(dataset=dict(type="COCOStuff171Dataset", data_root=data_root))
test_dataloader = val_dataloader
