"""Training through MMEngine's Runner: resume works under torch>=2.6, overrides reach the config,
a prior-path-only config trains its prior-free stage first."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging.history_buffer import HistoryBuffer
from PIL import Image

from segmentation.models.segmentor import LLMFormer
from segmentation.training import (
    ConfigError,
    TorchThreadsHook,
    TrainOptions,
    check_prior_source,
    from_plain_buffers,
    init_distributed,
    last_checkpoint,
    load_training_config,
    plan_stages,
    to_plain,
    train,
    train_stages,
)

CONFIGS = Path(__file__).parents[3] / "segmentation" / "configs"
CLASSES = ["sky", "grass", "dog", "sofa"]


def _write_images(root: Path, count: int = 4) -> None:
    rng = np.random.default_rng(0)
    for folder in ("images", "labels"):
        (root / folder).mkdir(parents=True)
    for index in range(count):
        labels = np.kron(rng.integers(0, len(CLASSES), (2, 2)), np.ones((16, 16))).astype(np.uint8)
        image = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / f"{index}.png")
        Image.fromarray(labels).save(root / "labels" / f"{index}.png")


def _runner_config(tiny, root: Path, max_iters: int, resume: bool = False) -> Config:
    pipeline = [
        dict(type="LoadImageFromFile"),
        dict(type="LoadAnnotations"),
        dict(type="PackLLMFormerInputs"),
    ]
    model = tiny.model_cfg()
    model.pop("vocabulary")  # VocabularyHook sets it from the dataset
    return Config(
        dict(
            default_scope="mmseg",
            work_dir=str(root / "work"),
            model=model,
            train_dataloader=dict(
                batch_size=2,
                num_workers=0,
                sampler=dict(type="InfiniteSampler", shuffle=True),
                dataset=dict(
                    type="BaseSegDataset",
                    data_root=str(root),
                    data_prefix=dict(img_path="images", seg_map_path="labels"),
                    img_suffix=".png",
                    seg_map_suffix=".png",
                    metainfo=dict(classes=CLASSES),
                    pipeline=pipeline,
                ),
            ),
            train_cfg=dict(type="IterBasedTrainLoop", max_iters=max_iters),
            optim_wrapper=dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=1e-3)),
            param_scheduler=[dict(type="PolyLR", power=1.0, begin=0, end=4, by_epoch=False)],
            default_hooks=dict(
                checkpoint=dict(type="CheckpointHook", by_epoch=False, interval=2),
                logger=dict(type="LoggerHook", interval=1),
            ),
            custom_hooks=[dict(type="VocabularyHook"), dict(type="PlainCheckpointHook")],
            log_processor=dict(by_epoch=False),
            randomness=dict(seed=0),
            env_cfg=dict(dist_cfg=dict(backend="gloo")),
            resume=resume,
        )
    )


def test_training_resumes_from_its_own_checkpoint(tiny, tmp_path, monkeypatch) -> None:
    _write_images(tmp_path)
    first = train(_runner_config(tiny, tmp_path, max_iters=2))
    checkpoint = tmp_path / "work" / "iter_2.pth"
    assert checkpoint.is_file()
    assert first.model.vocabulary == tuple((name,) for name in CLASSES)

    steps = []
    original_loss = LLMFormer.loss
    monkeypatch.setattr(
        LLMFormer, "loss", lambda self, *args: steps.append(1) or original_loss(self, *args)
    )
    resumed = train(_runner_config(tiny, tmp_path, max_iters=4, resume=True))
    assert resumed.iter == 4
    assert len(steps) == 2  # iterations 3 and 4 only
    assert (tmp_path / "work" / "iter_4.pth").is_file()


def test_checkpoints_load_with_torchs_default_weights_only_loader(tiny, tmp_path) -> None:
    _write_images(tmp_path)
    train(_runner_config(tiny, tmp_path, max_iters=2))
    checkpoint = torch.load(tmp_path / "work" / "iter_2.pth")  # weights_only=True by default
    scalars = checkpoint["message_hub"]["log_scalars"]
    assert "train/loss" in scalars
    assert scalars["train/loss"]["log_history"].shape == (2,)


def test_threads_hook_sets_the_thread_count_for_the_run_and_restores_it(
    tiny, tmp_path, monkeypatch
) -> None:
    _write_images(tmp_path)
    cfg = _runner_config(tiny, tmp_path, max_iters=2)
    cfg.custom_hooks.append(dict(type="TorchThreadsHook", num_threads=3))
    threads_in_steps = []
    original_loss = LLMFormer.loss
    monkeypatch.setattr(
        LLMFormer,
        "loss",
        lambda self, *args: (
            threads_in_steps.append(torch.get_num_threads()) or original_loss(self, *args)
        ),
    )
    train(cfg)
    assert threads_in_steps == [3, 3]
    assert torch.get_num_threads() == 1  # the single_thread fixture's count is back


def test_threads_hook_rejects_a_non_positive_count() -> None:
    with pytest.raises(ValueError, match="num_threads >= 1, got 0"):
        TorchThreadsHook(0)


def test_tiny_demo_config_trains_on_one_thread() -> None:
    cfg = Config.fromfile(str(CONFIGS / "llmformer_tiny_demo.py"))
    assert dict(type="TorchThreadsHook", num_threads=1) in cfg.custom_hooks
    assert {"VocabularyHook", "PlainCheckpointHook"} <= {hook.type for hook in cfg.custom_hooks}


def test_plain_state_round_trips_history_buffers() -> None:
    buffer = HistoryBuffer([1.0, 2.5], [1, 2], max_length=7)
    plain = to_plain({"log_scalars": {"loss": buffer}, "seed": np.int64(3), "x": np.ones(2)})
    assert plain["seed"] == 3 and type(plain["seed"]) is int
    assert isinstance(plain["x"], torch.Tensor)
    rebuilt = from_plain_buffers(plain["log_scalars"])["loss"]
    assert isinstance(rebuilt, HistoryBuffer)
    assert rebuilt.max_length == 7
    assert rebuilt.mean() == buffer.mean() and rebuilt.current() == 2.5


def test_a_checkpoint_pickling_history_buffers_is_still_refused(tmp_path) -> None:
    path = tmp_path / "mmengine_style.pth"
    torch.save({"message_hub": {"log_scalars": {"loss": HistoryBuffer([1.0], [1])}}}, path)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        torch.load(path)


def test_config_overrides_shorten_the_schedule_and_reach_load_priors(tmp_path) -> None:
    options = TrainOptions(
        CONFIGS / "llmformer_tiny_demo.py",
        work_dir=tmp_path,
        max_iters=10,
        cfg_options=["prior_set_id=abc123", "prior_store_root=/stores/demo"],
    )
    cfg = load_training_config(options)
    assert cfg.train_cfg.max_iters == 10
    assert cfg.train_cfg.val_interval == 10
    assert cfg.param_scheduler[0].end == 10
    assert cfg.work_dir == str(tmp_path)
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        load_priors = [t for t in loader.dataset.pipeline if t.type == "LoadPriors"]
        assert load_priors == [
            dict(type="LoadPriors", store_root="/stores/demo", prior_set_id="abc123")
        ]


def test_a_longer_run_stretches_the_schedule_that_spans_it_and_keeps_a_warmup(tmp_path) -> None:
    experiment = tmp_path / "warmup.py"
    experiment.write_text(
        f"_base_ = [{str(CONFIGS / 'llmformer_tiny_demo.py')!r}]\n"
        "param_scheduler = [\n"
        "    dict(type='LinearLR', start_factor=0.1, begin=0, end=50, by_epoch=False),\n"
        "    dict(type='PolyLR', power=1.0, begin=50, end=1000, by_epoch=False),\n"
        "]\n"
    )
    options = TrainOptions(
        experiment, work_dir=tmp_path, max_iters=3000, cfg_options=["prior_set_id=abc123"]
    )
    cfg = load_training_config(options)
    assert cfg.train_cfg.max_iters == 3000
    assert [scheduler.end for scheduler in cfg.param_scheduler] == [50, 3000]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (TrainOptions(Path("missing.py")), "config not found: missing.py"),
        (
            TrainOptions(CONFIGS / "llmformer_tiny_demo.py", cfg_options=["no-equals-sign"]),
            "--cfg-options expects KEY=VALUE",
        ),
        (TrainOptions(CONFIGS / "llmformer_tiny_demo.py", max_iters=0), "must be positive"),
    ],
)
def test_bad_training_options_raise_config_errors(options: TrainOptions, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_training_config(options)


def test_a_prior_store_or_set_that_is_not_there_is_refused_before_training(tmp_path) -> None:
    from storage import PriorStore

    PriorStore(tmp_path / "store")  # a store with no prior set in it
    cfg = Config(dict(prior_store_root=str(tmp_path / "store"), prior_set_id=1234))
    with pytest.raises(ConfigError, match=r"prior set '1234' is not in the store .*priors sets"):
        check_prior_source(cfg)
    cfg.prior_store_root = str(tmp_path / "typo")
    with pytest.raises(ConfigError, match="no prior store at"):
        check_prior_source(cfg)
    check_prior_source(Config(dict()))  # a config that reads no priors needs none


def test_an_id_of_digits_reaches_load_priors_as_text() -> None:
    cfg = load_training_config(
        TrainOptions(
            CONFIGS / "llmformer_tiny_demo.py",
            cfg_options=["prior_set_id=1234", "prior_store_root=/stores/demo"],
        )
    )
    assert cfg.prior_set_id == "1234"
    assert cfg.train_dataloader.dataset.pipeline[2]["prior_set_id"] == "1234"


def test_data_root_points_every_loader_at_its_dataset_folder() -> None:
    cfg = load_training_config(
        TrainOptions(
            CONFIGS / "llmformer_tiny_demo.py",
            cfg_options=["prior_set_id=abc123"],
            data_root=Path("/sets"),
        )
    )
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        assert loader.dataset.data_root == "/sets/demo"
    paper = load_training_config(
        TrainOptions(
            CONFIGS / "llmformer_vitl14_336_coco-stuff171.py",
            cfg_options=["prior_set_id=abc123"],
            data_root=Path("/sets"),
        )
    )
    assert paper.train_dataloader.dataset.data_root == "/sets/coco_stuff_171"


def test_data_root_refuses_a_dataset_type_it_has_no_folder_for() -> None:
    options = TrainOptions(
        CONFIGS / "llmformer_tiny_demo.py",
        cfg_options=["prior_set_id=abc123", "train_dataloader.dataset.type=MyOwnDataset"],
        data_root=Path("/sets"),
    )
    with pytest.raises(ConfigError, match="not of train_dataloader's MyOwnDataset: set "):
        load_training_config(options)


def test_the_launcher_option_sets_the_configs_launcher() -> None:
    demo = CONFIGS / "llmformer_tiny_demo.py"
    ids = ["prior_set_id=abc123"]
    assert load_training_config(
        TrainOptions(demo, cfg_options=ids, launcher="pytorch")
    ).launcher == ("pytorch")
    assert "launcher" not in load_training_config(TrainOptions(demo, cfg_options=ids))
    with pytest.raises(ConfigError, match="--launcher must be one of none, pytorch, slurm"):
        load_training_config(TrainOptions(demo, cfg_options=ids, launcher="mpi"))


@pytest.mark.parametrize(
    ("launcher", "backend", "message"),
    [
        ("slurm", "gloo", "--launcher slurm binds each process to a GPU and this machine has none"),
        ("pytorch", "nccl", "the nccl backend needs CUDA.*env_cfg.dist_cfg.backend=gloo"),
    ],
)
def test_without_cuda_only_torchrun_with_gloo_is_accepted(
    launcher: str, backend: str, message: str, monkeypatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = Config(dict(launcher=launcher, env_cfg=dict(dist_cfg=dict(backend=backend))))
    with pytest.raises(ConfigError, match=message):
        init_distributed(cfg)
    init_distributed(Config(dict(env_cfg=dict(dist_cfg=dict(backend="nccl")))))  # one process
    assert not torch.distributed.is_initialized()


@pytest.mark.parametrize(
    "config",
    [
        "llmformer_tiny_demo.py",
        "llmformer_vitl14_336_coco-stuff171.py",
        "ablations/llmformer_vitl14_336_coco-stuff171_baseline.py",
    ],
)
def test_every_config_tells_ddp_to_expect_parameters_without_gradients(config: str) -> None:
    wrapper = Config.fromfile(str(CONFIGS / config)).model_wrapper_cfg
    assert wrapper.type == "MMDistributedDataParallel"
    assert wrapper.find_unused_parameters is True  # a switched-off module gets no gradient
    assert wrapper.device_ids is None  # DDP refuses device ids for a module on the CPU


TINY_OPTIONS = ["prior_set_id=abc123", "prior_store_root=/stores/demo"]


def test_the_tiny_config_trains_its_prior_free_stage_first_with_the_same_options(tmp_path) -> None:
    options = TrainOptions(
        CONFIGS / "llmformer_tiny_demo.py", tmp_path, 7, cfg_options=TINY_OPTIONS
    )
    first, second = plan_stages(options)
    assert Path(first.filename) == CONFIGS / "llmformer_tiny_demo_prior_free.py"
    assert first.work_dir == str(tmp_path / "prior_free")
    assert first.model.train_prior_path_only is False
    assert first.model.decode_head.use_semantic_attention is False
    assert second.work_dir == str(tmp_path) and second.model.train_prior_path_only is True
    for cfg in (first, second):
        assert cfg.train_cfg.max_iters == 7 and cfg.prior_set_id == "abc123"


def test_no_prior_free_stage_when_load_from_is_set_or_a_resumed_run_has_checkpoints(
    tmp_path,
) -> None:
    tiny = CONFIGS / "llmformer_tiny_demo.py"
    loaded = TrainOptions(tiny, tmp_path, cfg_options=[*TINY_OPTIONS, "load_from=base.pth"])
    assert [cfg.work_dir for cfg in plan_stages(loaded)] == [str(tmp_path)]
    resumed = TrainOptions(tiny, tmp_path, resume=True, cfg_options=TINY_OPTIONS)
    assert len(plan_stages(resumed)) == 2  # nothing to resume yet
    (tmp_path / "iter_10.pth").write_bytes(b"")
    (tmp_path / "last_checkpoint").write_text(str(tmp_path / "iter_10.pth"))
    assert [cfg.work_dir for cfg in plan_stages(resumed)] == [str(tmp_path)]
    prior_free = TrainOptions(CONFIGS / "llmformer_tiny_demo_prior_free.py", tmp_path)
    assert len(plan_stages(replace(prior_free, cfg_options=TINY_OPTIONS))) == 1


def test_a_prior_path_only_config_without_a_prior_free_stage_is_refused(tmp_path) -> None:
    experiment = tmp_path / "orphan.py"
    experiment.write_text(
        f"_base_ = [{str(CONFIGS / 'llmformer_tiny_demo.py')!r}]\nprior_free_config = None\n"
    )
    options = TrainOptions(experiment, tmp_path, cfg_options=TINY_OPTIONS)
    with pytest.raises(ConfigError, match=r"orphan.py trains only the prior path .* set load_from"):
        plan_stages(options)
    missing = TrainOptions(
        experiment, tmp_path, cfg_options=[*TINY_OPTIONS, f"prior_free_config={tmp_path}/no.py"]
    )
    with pytest.raises(ConfigError, match=r"prior_free_config of orphan.py not found: .*no.py"):
        plan_stages(missing)


def test_each_stage_starts_from_the_last_checkpoint_of_the_one_before(tmp_path, monkeypatch):
    trained = []

    def fake_train(cfg: Config):
        trained.append((cfg.work_dir, cfg.get("load_from"), cfg.resume))
        Path(cfg.work_dir).mkdir(parents=True, exist_ok=True)
        (Path(cfg.work_dir) / "last_checkpoint").write_text(f"{cfg.work_dir}/iter_7.pth")
        return cfg.work_dir

    monkeypatch.setattr("segmentation.training.train", fake_train)
    options = TrainOptions(
        CONFIGS / "llmformer_tiny_demo.py", tmp_path, resume=True, cfg_options=TINY_OPTIONS
    )
    assert train_stages(plan_stages(options)) == str(tmp_path)
    stage = str(tmp_path / "prior_free")
    assert trained == [(stage, None, True), (str(tmp_path), f"{stage}/iter_7.pth", False)]


def test_last_checkpoint_reads_mmengines_marker(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="training wrote no checkpoint"):
        last_checkpoint(tmp_path)
    (tmp_path / "last_checkpoint").write_text(f"{tmp_path}/iter_50.pth\n")
    assert last_checkpoint(tmp_path) == tmp_path / "iter_50.pth"
