"""Zero-shot evaluation of one checkpoint on several benchmarks through MMEngine's test loop.

For each benchmark the experiment config (with `--cfg-options` applied as training applies them)
is copied and its test dataloader, evaluator and loop are replaced; the config's own test pipeline
is kept, so priors load as in training. The Runner then loads the checkpoint (with torch's safe
loader: this project's checkpoints hold only tensors and plain containers) and runs `test()`.

Under a launcher each process tests its share of the images; MMEngine gathers the metric's
results on rank 0 in dataset order (the sampler's padding dropped), so the metrics equal one
process's. Only rank 0's metric keeps the per-class and per-image results; it hands them to
the other ranks, so every process returns the same table (and only rank 0 should write it).
"""

from __future__ import annotations

import copy
import zipfile
from dataclasses import dataclass
from pathlib import Path

from mmengine.config import Config

from segmentation.datasets.catalog import BenchmarkInfo, benchmark
from segmentation.datasets.constants import IGNORE_INDEX
from segmentation.evaluation.table import DatasetDetail, EvalRow, EvalTable

EVAL_HOOKS = ("VocabularyHook", "EvaluatorTextEncoderHook")
"""Hooks every evaluation needs: the dataset's vocabulary in the model, and the model's text
encoder in the metric (for Open-mIoU and vocabulary-free names)."""

LEGACY_HEADER_BYTES = 32
"""Bytes read to find torch's magic number in a legacy checkpoint (pickle framing included)."""


@dataclass(frozen=True)
class EvalRequest:
    """One `llmformer eval` call."""

    config: Path
    checkpoint: Path
    datasets: tuple[str, ...]
    data_root: Path
    work_dir: Path
    vocabulary_free: bool = False
    run: str | None = None
    cfg_options: tuple[str, ...] = ()
    save_predictions: bool = False
    launcher: str | None = None


def _test_pipeline(cfg: Config) -> list:
    """The pipeline the config tests with (it may load priors), to reuse on every benchmark."""
    return copy.deepcopy(cfg.test_dataloader.dataset.pipeline)


def benchmark_config(cfg: Config, info: BenchmarkInfo, request: EvalRequest) -> Config:
    """The experiment config set up to test `request.checkpoint` on one benchmark."""
    cfg = copy.deepcopy(cfg)
    cfg.test_dataloader = {
        "batch_size": 1,
        "num_workers": 0,
        "sampler": {"type": "DefaultSampler", "shuffle": False},
        "dataset": info.dataset_cfg(str(request.data_root), _test_pipeline(cfg)),
    }
    cfg.test_evaluator = {"type": "OpenIoUMetric", "ignore_index": IGNORE_INDEX}
    if request.save_predictions:
        cfg.test_evaluator["output_dir"] = str(request.work_dir / info.key / "predictions")
    cfg.test_cfg = {"type": "TestLoop"}
    cfg.load_from = str(request.checkpoint)
    cfg.resume = False
    cfg.work_dir = str(request.work_dir / info.key)
    hooks = list(cfg.get("custom_hooks", []))
    present = {hook.get("type") for hook in hooks}
    cfg.custom_hooks = hooks + [{"type": name} for name in EVAL_HOOKS if name not in present]
    if request.vocabulary_free:
        cfg.model.setdefault("test_cfg", {})["vocabulary_free"] = True
    return cfg


def check_checkpoint(path: Path) -> None:
    """Fail at once, naming the file, on a checkpoint torch cannot open (empty, truncated zip, not
    a `torch.save` file at all), which would otherwise stop the run after model building."""
    if not (_is_torch_zip(path) or _is_legacy_torch_file(path)):
        raise ValueError(f"checkpoint {path} is not a PyTorch checkpoint (torch.save file)")


def _is_torch_zip(path: Path) -> bool:
    """A complete zip archive (its central directory intact) holding torch's `data.pkl`."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("data.pkl") for name in archive.namelist())


def _is_legacy_torch_file(path: Path) -> bool:
    """The pre-1.6 format (older OpenMMLab model-zoo files): a pickle (opcode 0x80 first) whose
    first object is torch's magic number."""
    from torch.serialization import MAGIC_NUMBER

    with path.open("rb") as file:
        head = file.read(LEGACY_HEADER_BYTES)
    return head[:1] == b"\x80" and MAGIC_NUMBER.to_bytes(10, "little") in head


def evaluate_checkpoint(request: EvalRequest) -> EvalTable:
    """Run the test loop on every requested benchmark and gather one table."""
    from mmengine.runner import Runner

    from segmentation.training import (
        TrainOptions,
        check_prior_source,
        init_distributed,
        load_training_config,
    )

    check_checkpoint(request.checkpoint)
    options = TrainOptions(
        request.config, cfg_options=list(request.cfg_options), launcher=request.launcher
    )
    base = load_training_config(options)
    check_prior_source(base)
    init_distributed(base)
    rows, details = [], []
    for info in [benchmark(key) for key in request.datasets]:
        runner = Runner.from_cfg(benchmark_config(base, info, request))
        metrics = runner.test()
        rows.append(EvalRow.from_metrics(info.key, len(runner.test_dataloader.dataset), metrics))
        details.append(_shared_detail(info, runner))
    return EvalTable(
        rows,
        run=request.run or f"{request.config.stem}:{request.checkpoint.stem}",
        config=str(request.config),
        checkpoint=str(request.checkpoint),
        prior_set_id=str(base.get("prior_set_id") or ""),
        vocabulary_free=request.vocabulary_free,
        details=details,
    )


def _shared_detail(info: BenchmarkInfo, runner) -> DatasetDetail:
    """Rank 0's detail, on every rank (one process: its own)."""
    from mmengine.dist import broadcast_object_list, is_main_process

    shared = [_detail(info, runner) if is_main_process() else None]
    broadcast_object_list(shared)
    return shared[0]


def _detail(info: BenchmarkInfo, runner) -> DatasetDetail:
    """Per-class IoU and per-image class counts that the test loop's metric kept."""
    from segmentation.evaluation.metric import OpenIoUMetric

    metric = next(m for m in runner.test_evaluator.metrics if isinstance(m, OpenIoUMetric))
    classes = tuple(metric.dataset_meta["classes"])
    synonyms = metric.dataset_meta.get("synonyms") or [[name] for name in classes]
    return DatasetDetail(
        benchmark=info.key,
        dataset=info.dataset_name,
        classes=classes,
        synonyms=tuple(tuple(names) for names in synonyms),
        iou=metric.per_class["IoU"],
        per_image=metric.per_image,
    )
