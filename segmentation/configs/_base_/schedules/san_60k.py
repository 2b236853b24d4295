# SAN's COCO-Stuff-171 recipe: AdamW lr 1e-4, wd 1e-4, poly decay over 60k iterations, grad clip
# 0.01, AMP; batch 32 (the dataset config's batch times the number of GPUs). The frozen CLIP
# tower gets no gradient; norms, embeddings and the temperature get no weight decay.
optim_wrapper = dict(
    type="AmpOptimWrapper",
    optimizer=dict(type="AdamW", lr=1e-4, weight_decay=1e-4, betas=(0.9, 0.999)),
    clip_grad=dict(max_norm=0.01, norm_type=2),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        custom_keys={
            "query_feat": dict(decay_mult=0.0),
            "query_pos": dict(decay_mult=0.0),
            "level_embed": dict(decay_mult=0.0),
            "logit_scale": dict(decay_mult=0.0),
            "void_embedding": dict(decay_mult=0.0),
        },
    ),
)
param_scheduler = [dict(type="PolyLR", eta_min=0.0, power=1.0, begin=0, end=60000, by_epoch=False)]
train_cfg = dict(type="IterBasedTrainLoop", max_iters=60000, val_interval=5000)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
# Iteration-based: CheckpointHook must be told by_epoch=False or it names files epoch_N.pth.
default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(type="CheckpointHook", by_epoch=False, interval=5000, max_keep_ckpts=3),
    sampler_seed=dict(type="DistSamplerSeedHook"),
    visualization=dict(type="SegVisualizationHook"),
)
