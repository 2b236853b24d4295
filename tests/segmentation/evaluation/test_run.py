"""`benchmark_config`: the evaluator scores names with the model's text encoder, through the hook
every evaluation config gets."""

from __future__ import annotations

from pathlib import Path

from mmengine.config import Config

from segmentation.datasets.catalog import benchmark
from segmentation.evaluation.run import EvalRequest, benchmark_config

CONFIG = Path(__file__).resolve().parents[3] / "segmentation/configs/llmformer_tiny_demo.py"


def _request(tmp_path: Path) -> EvalRequest:
    return EvalRequest(CONFIG, tmp_path / "model.pth", ("a150",), tmp_path, tmp_path / "eval")


def test_the_evaluator_has_no_encoder_of_its_own_and_gets_the_models(tmp_path) -> None:
    cfg = Config.fromfile(str(CONFIG))
    cfg.test_evaluator = dict(type="OpenIoUMetric", text_encoder=dict(type="MiniLMTextEncoder"))
    built = benchmark_config(cfg, benchmark("a150"), _request(tmp_path))
    assert built.test_evaluator == {"type": "OpenIoUMetric", "ignore_index": 65535}
    hooks = [hook["type"] for hook in built.custom_hooks]
    assert hooks.count("EvaluatorTextEncoderHook") == 1 and hooks.count("VocabularyHook") == 1


def test_the_hooks_are_added_to_a_config_that_lacks_them(tmp_path) -> None:
    cfg = Config.fromfile(str(CONFIG))
    cfg.custom_hooks = [dict(type="PlainCheckpointHook")]
    built = benchmark_config(cfg, benchmark("a150"), _request(tmp_path))
    assert [hook["type"] for hook in built.custom_hooks] == [
        "PlainCheckpointHook",
        "VocabularyHook",
        "EvaluatorTextEncoderHook",
    ]
