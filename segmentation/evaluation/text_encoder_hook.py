"""Let the evaluator's metrics embed class names with the evaluated model's own text encoder."""

from __future__ import annotations

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS


def _hand_over(runner, evaluator) -> None:
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    for metric in evaluator.metrics:
        if hasattr(metric, "set_text_encoder"):
            metric.set_text_encoder(model.text_encoder)


@HOOKS.register_module()
class EvaluatorTextEncoderHook(Hook):
    """Before validation and testing, give every metric that embeds class names (`OpenIoUMetric`:
    Open-mIoU similarities, vocabulary-free name mapping) the model's text encoder, so names are
    compared in the space the model classified them in, not in another encoder's."""

    priority = "NORMAL"

    def before_val(self, runner) -> None:
        _hand_over(runner, runner.val_loop.evaluator)

    def before_test(self, runner) -> None:
        _hand_over(runner, runner.test_loop.evaluator)
