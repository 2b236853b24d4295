# The synthetic demo set (`llmformer data demo --out data/datasets/demo`): 64x64 shape scenes.
# No flips or crops: the captions name left/right/above/below, which a flip would contradict.
ignore_index = 65535
data_root = "data/datasets/demo"
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadLabelMap"),
    dict(type="PackLLMFormerInputs"),
]
test_pipeline = train_pipeline
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    dataset=dict(
        type="LLMFormerDemoDataset", data_root=data_root, split="train", pipeline=train_pipeline
    ),
)
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(
        type="LLMFormerDemoDataset",
        data_root=data_root,
        split="val",
        test_mode=True,
        pipeline=test_pipeline,
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(type="OpenIoUMetric", ignore_index=ignore_index)
test_evaluator = val_evaluator
