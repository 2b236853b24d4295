"""Training entry points: a config with command-line overrides, and resumable checkpoints.

torch>=2.6 loads checkpoints with `weights_only=True`, which refuses MMEngine's checkpoints: they
pickle the message hub's `HistoryBuffer`s (numpy arrays inside, and the buffers' statistics
methods through `getattr`, which no allowlist can make safe). `PlainCheckpointHook` writes that
state as tensors and plain containers and rebuilds it on load, so the default safe loader
resumes our checkpoints and nothing anywhere loads with `weights_only=False`.

`TorchThreadsHook` caps torch's intra-op threads for a run: tiny models on a few shared CPU cores
train several times faster on one thread than with threads that wait on each other for a core.

A config whose model trains only the prior path (`model.train_prior_path_only`) stands on a
prior-free model: `train_stages` first trains the config its `prior_free_config` names (into the
work dir's `prior_free/`) and loads that run's last checkpoint, unless `load_from` names one
(`plan_stages`, `train_stages`).

Several processes: `torchrun ... -m flows.cli train CONFIG --launcher pytorch` (or `srun ...
--launcher slurm` on GPUs) with the backend of `env_cfg.dist_cfg`, as MMEngine documents.
MMEngine 0.10's `init_dist` binds every process to a GPU with `torch.cuda.set_device`, whatever
the backend, which fails on a CPU build; without CUDA `init_distributed` joins torchrun's gloo
group before the Runner, which then finds the group up and uses it as its own.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.hooks import Hook
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner import Runner
from mmengine.runner.checkpoint import find_latest_checkpoint
from mmseg.registry import HOOKS, RUNNERS

PLAIN_BUFFER = "__history_buffer__"
LAUNCHERS = ("none", "pytorch", "slurm")
"""MMEngine's launchers this project supports: one process, torchrun's environment, Slurm's."""
DATA_LOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")
PRIOR_FREE_WORK_DIR = "prior_free"
"""Under a two-stage run's work dir: the prior-free stage's checkpoints and logs."""


def to_plain(value):
    """Replace HistoryBuffers, numpy arrays and numpy scalars by tensors and plain containers."""
    if isinstance(value, HistoryBuffer):
        log_history, count_history = value.data
        return {
            PLAIN_BUFFER: True,
            "log_history": torch.from_numpy(np.array(log_history, dtype=np.float64)),
            "count_history": torch.from_numpy(np.array(count_history, dtype=np.float64)),
            "max_length": int(value.max_length),
        }
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return type(value)((key, to_plain(item)) for key, item in value.items())
    if isinstance(value, list | tuple):
        return type(value)(to_plain(item) for item in value)
    return value


def from_plain_buffers(log_scalars: dict) -> dict:
    """Rebuild the HistoryBuffers `to_plain` flattened (other values pass through)."""
    return type(log_scalars)(
        (
            key,
            _history_buffer(value)
            if isinstance(value, Mapping) and PLAIN_BUFFER in value
            else value,
        )
        for key, value in log_scalars.items()
    )


def _history_buffer(plain: Mapping) -> HistoryBuffer:
    return HistoryBuffer(
        plain["log_history"].numpy(), plain["count_history"].numpy(), plain["max_length"]
    )


@HOOKS.register_module()
class PlainCheckpointHook(Hook):
    """Save checkpoints that torch's weights-only loader reads; restore the message hub on load."""

    priority = "VERY_LOW"

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.update(to_plain(checkpoint))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        hub = checkpoint.get("message_hub")
        if isinstance(hub, Mapping) and "log_scalars" in hub:
            hub["log_scalars"] = from_plain_buffers(hub["log_scalars"])


@HOOKS.register_module()
class TorchThreadsHook(Hook):
    """Run training and evaluation on `num_threads` intra-op threads, then restore the old count."""

    priority = "VERY_HIGH"

    def __init__(self, num_threads: int) -> None:
        if num_threads < 1:
            raise ValueError(f"TorchThreadsHook needs num_threads >= 1, got {num_threads}")
        self.num_threads = num_threads
        self._previous: int | None = None

    def before_run(self, runner) -> None:
        self._previous = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)

    def after_run(self, runner) -> None:
        if self._previous is not None:
            torch.set_num_threads(self._previous)
            self._previous = None


class ConfigError(ValueError):
    """A training config or override that cannot be used."""


@dataclass(frozen=True)
class TrainOptions:
    """What the `llmformer train` command can change in a config."""

    config: Path
    work_dir: Path | None = None
    max_iters: int | None = None
    resume: bool = False
    cfg_options: list[str] = field(default_factory=list)
    launcher: str | None = None
    data_root: Path | None = None


def load_training_config(options: TrainOptions) -> Config:
    """The config file with overrides applied; `resume` continues from the newest checkpoint,
    `launcher` (default: the config's, else none) starts one process of several, `data_root`
    (the folder of prepared datasets) sets every loader's dataset folder."""
    if not options.config.is_file():
        raise ConfigError(f"config not found: {options.config}")
    if options.launcher is not None and options.launcher not in LAUNCHERS:
        raise ConfigError(
            f"--launcher must be one of {', '.join(LAUNCHERS)}, got {options.launcher!r}"
        )
    cfg = Config.fromfile(str(options.config))
    if options.cfg_options:
        cfg.merge_from_dict(_parse_overrides(options.cfg_options))
    if options.launcher is not None:
        cfg.launcher = options.launcher
    if options.data_root is not None:
        set_data_root(cfg, options.data_root)
    cfg.work_dir = str(options.work_dir or Path("work_dirs") / options.config.stem)
    if options.max_iters is not None:
        _set_max_iters(cfg, options.max_iters)
    cfg.resume = options.resume
    _apply_prior_source(cfg)
    return cfg


def _apply_prior_source(cfg: Config) -> None:
    """Copy the top-level `prior_store_root`/`prior_set_id` into every LoadPriors transform, so
    one `--cfg-options prior_set_id=ID` reaches all pipelines."""
    if cfg.get("prior_set_id") is not None:
        cfg.prior_set_id = str(cfg.prior_set_id)  # an override of digits parses as a number
    source = {
        key: cfg[name]
        for key, name in (("store_root", "prior_store_root"), ("prior_set_id", "prior_set_id"))
        if name in cfg
    }

    def visit(node) -> None:
        if isinstance(node, dict):
            if node.get("type") == "LoadPriors":
                node.update(source)
            for value in node.values():
                visit(value)
        elif isinstance(node, list | tuple):
            for value in node:
                visit(value)

    for loader in DATA_LOADERS:
        visit(cfg.get(loader))
    if any(not value for value in source.values()):
        raise ConfigError(
            "LoadPriors needs a store_root and a prior_set_id: pass --cfg-options "
            "prior_store_root=STORE prior_set_id=ID (`llmformer priors sets` lists the ids)"
        )


def set_data_root(cfg: Config, data_root: Path) -> None:
    """Point each loader's dataset at its folder under `data_root`, where `llmformer data`
    prepares it and `llmformer eval --data-root` looks for it (`data_root/demo`, ...)."""
    from segmentation.datasets.catalog import BENCHMARKS

    folders = {info.type: info.folder for info in BENCHMARKS.values()}
    for loader in DATA_LOADERS:
        dataset = (cfg.get(loader) or {}).get("dataset")
        if dataset is None:
            continue
        if dataset.get("type") not in folders:
            raise ConfigError(
                f"--data-root knows the folders of {', '.join(sorted(folders))}, not of "
                f"{loader}'s {dataset.get('type')}: set {loader}.dataset.data_root instead"
            )
        dataset.data_root = str(data_root / folders[dataset.type])


def check_prior_source(cfg: Config) -> None:
    """Refuse, before a model is built, a prior store or prior set that is not there: with a
    mistyped id a run would train or evaluate on empty priors, with only a warning."""
    from storage import PriorStore, StoreError

    root, prior_set_id = cfg.get("prior_store_root"), cfg.get("prior_set_id")
    if root is None or prior_set_id is None:
        return
    try:
        known = PriorStore(root, create=False).prior_set_ids()
    except StoreError as error:
        raise ConfigError(str(error)) from error
    if str(prior_set_id) not in known:
        raise ConfigError(
            f"prior set {str(prior_set_id)!r} is not in the store {root} "
            f"(`llmformer priors sets --store {root}` lists its ids)"
        )


def _parse_overrides(pairs: list[str]) -> dict:
    """KEY=VALUE strings parsed as MMEngine's `--cfg-options` parses them."""
    overrides = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise ConfigError(f"--cfg-options expects KEY=VALUE, got {pair!r}")
        overrides[key] = DictAction._parse_iterable(value)
    return overrides


def _set_max_iters(cfg: Config, max_iters: int) -> None:
    """Shorten or lengthen an iteration-based run: a schedule that ended with the run ends with
    it still (else a longer run would train on at the schedule's final learning rate), and one
    that would outlast it is cut at its end."""
    if max_iters < 1:
        raise ConfigError(f"--max-iters must be positive, got {max_iters}")
    if cfg.train_cfg.get("type") != "IterBasedTrainLoop":
        raise ConfigError("--max-iters needs an IterBasedTrainLoop config")
    configured = cfg.train_cfg.get("max_iters")
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = min(cfg.train_cfg.get("val_interval", max_iters), max_iters)
    for scheduler in cfg.get("param_scheduler", []):
        if scheduler.get("end") == configured or scheduler.get("end", 0) > max_iters:
            scheduler.end = max_iters


def init_distributed(cfg: Config) -> None:
    """Join the process group of a multi-process launch on a machine without CUDA (see module).

    With CUDA, or with one process, this does nothing and the Runner's `init_dist` runs as
    MMEngine ships it; without CUDA only torchrun's environment and the gloo backend can work.
    """
    import torch.distributed as dist

    launcher = cfg.get("launcher", "none")
    if launcher == "none" or torch.cuda.is_available() or dist.is_initialized():
        return
    if launcher != "pytorch":
        raise ConfigError(
            f"--launcher {launcher} binds each process to a GPU and this machine has none: "
            "start the processes with torchrun and --launcher pytorch"
        )
    dist_cfg = cfg.get("env_cfg", {}).get("dist_cfg", {})
    backend = dist_cfg.get("backend", "nccl")
    if backend != "gloo":
        raise ConfigError(
            f"the {backend} backend needs CUDA, which this machine lacks: pass "
            "--cfg-options env_cfg.dist_cfg.backend=gloo"
        )
    timeout = dist_cfg.get("timeout")
    dist.init_process_group(
        backend=backend,
        timeout=None if timeout is None else datetime.timedelta(seconds=timeout),
    )


def train(cfg: Config) -> Runner:
    """Build the runner a config asks for (MMSeg's way) and train; returns the trained runner."""
    check_prior_source(cfg)
    init_distributed(cfg)
    runner = RUNNERS.build(cfg) if "runner_type" in cfg else Runner.from_cfg(cfg)
    runner.train()
    return runner


def prior_free_stage(cfg: Config, options: TrainOptions) -> TrainOptions | None:
    """The run a prior-path-only config needs first: its `prior_free_config` (a path; configs
    write it from `{{fileDirname}}`) with the same options, in the work dir's
    PRIOR_FREE_WORK_DIR; None when the model trains whole, `load_from` is set, or `resume` finds
    a run of its own to go on."""
    if not cfg.model.get("train_prior_path_only") or cfg.get("load_from"):
        return None
    if cfg.resume and find_latest_checkpoint(cfg.work_dir) is not None:
        return None
    name = cfg.get("prior_free_config")
    if not name:
        raise ConfigError(
            f"{options.config.name} trains only the prior path (model.train_prior_path_only) "
            "and names no prior_free_config: set load_from to a prior-free model's checkpoint"
        )
    config = Path(name)
    if not config.is_file():
        raise ConfigError(f"prior_free_config of {options.config.name} not found: {config}")
    return replace(options, config=config, work_dir=Path(cfg.work_dir) / PRIOR_FREE_WORK_DIR)


def plan_stages(options: TrainOptions) -> list[Config]:
    """The configs to train in turn: the prior-free stage the config needs (if any), then the
    config itself; every one is loaded and checked before anything trains."""
    cfg = load_training_config(options)
    stage = prior_free_stage(cfg, options)
    return [cfg] if stage is None else [load_training_config(stage), cfg]


def last_checkpoint(work_dir: Path | str) -> Path:
    """The checkpoint MMEngine's CheckpointHook wrote last (it records it in `last_checkpoint`)."""
    marker = Path(work_dir) / "last_checkpoint"
    if not marker.exists():
        raise FileNotFoundError(f"{marker}: training wrote no checkpoint")
    return Path(marker.read_text().strip())


def train_stages(stages: list[Config]) -> Runner:
    """Train each config in turn, each from the last checkpoint of the one before; returns the
    last runner."""
    runner = None
    for index, cfg in enumerate(stages):
        if index > 0:
            cfg.load_from = str(last_checkpoint(stages[index - 1].work_dir))
            cfg.resume = False  # MMEngine would resume the previous stage's iterations
        runner = train(cfg)
    return runner
