# Shared zero-shot evaluation settings; each benchmark config sets only its dataset type and root.
# Labels keep their ids above 255: LoadLabelMap maps every set's ignore value to 65535.
ignore_index = 65535
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=(2560, 640), keep_ratio=True),
    dict(type="LoadLabelMap"),
    dict(type="PackLLMFormerInputs"),
]
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(split="val", test_mode=True, pipeline=test_pipeline),
)
val_dataloader = test_dataloader
test_evaluator = dict(type="OpenIoUMetric", ignore_index=ignore_index)
val_evaluator = test_evaluator
