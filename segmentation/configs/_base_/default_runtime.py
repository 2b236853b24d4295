# Runtime shared by every LLMFormer experiment (default hooks live with the schedule, as in
# MMSeg). PlainCheckpointHook makes checkpoints that torch>=2.6's safe loader can resume from;
# EvaluatorTextEncoderHook lets OpenIoUMetric embed class names with the model's text encoder.
default_scope = "mmseg"
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
    dist_cfg=dict(backend="nccl"),
)
# Several processes (`--launcher pytorch|slurm`): each decoder module can be switched off (the
# ablations), and a switched-off or prior-less path leaves parameters without a gradient, which
# DDP must be told to look for. device_ids=None: DDP keeps the module on the device it is on (the
# GPU MMEngine's init_dist chose, or the CPU on a gloo run), where MMEngine's default names a GPU;
# broadcast_buffers=False as MMEngine's default wrapper (the model has no running statistics).
model_wrapper_cfg = dict(
    type="MMDistributedDataParallel",
    find_unused_parameters=True,
    device_ids=None,
    broadcast_buffers=False,
)
custom_hooks = [
    dict(type="VocabularyHook"),
    dict(type="EvaluatorTextEncoderHook"),
    dict(type="PlainCheckpointHook"),
]
# Scalars (loss, learning rate, mIoU) go to `WORK_DIR/<run>/vis_data/`: scalars.json (read by
# `llmformer curves`) and TensorBoard event files (`tensorboard --logdir data/work_dirs`). For
# MLflow (`pip install mlflow`) instead of TensorBoard, pass
#   --cfg-options visualizer.vis_backends.1.type=MLflowVisBackend
# (runs go to ./mlruns or $MLFLOW_TRACKING_URI), or add both to an experiment config:
#   vis_backends = [dict(type="LocalVisBackend"), dict(type="TensorboardVisBackend"),
#                   dict(type="MLflowVisBackend", tracking_uri="file:data/mlruns")]
#   visualizer = dict(vis_backends=vis_backends)
vis_backends = [dict(type="LocalVisBackend"), dict(type="TensorboardVisBackend")]
# no `name`: the Runner names each run's visualizer after the run, so the two stages of a
# prior-path config, trained in one process, each log to their own folder
visualizer = dict(type="SegLocalVisualizer", vis_backends=vis_backends)
log_processor = dict(by_epoch=False)
log_level = "INFO"
load_from = None
resume = False
randomness = dict(seed=0)
