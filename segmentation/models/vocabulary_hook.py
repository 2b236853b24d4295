"""Keep the segmentor's vocabulary in step with the dataset it is about to train or evaluate on."""

from __future__ import annotations

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS


def _set_vocabulary(runner, dataset) -> tuple:
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    metainfo = dataset.metainfo
    classes = metainfo["classes"]
    synonyms = metainfo.get("synonyms")
    model.set_vocabulary(classes, synonyms)
    return classes, synonyms


@HOOKS.register_module()
class VocabularyHook(Hook):
    """Set the model's vocabulary from the train, val or test dataset's `classes`/`synonyms`.

    Validation during training switches to the validation set's classes, then back.
    """

    priority = "NORMAL"

    def __init__(self) -> None:
        self._train_vocabulary: tuple | None = None

    def before_train(self, runner) -> None:
        self._train_vocabulary = _set_vocabulary(runner, runner.train_dataloader.dataset)

    def before_val(self, runner) -> None:
        _set_vocabulary(runner, runner.val_dataloader.dataset)

    def after_val(self, runner) -> None:
        if self._train_vocabulary is not None:
            model = runner.model.module if is_model_wrapper(runner.model) else runner.model
            model.set_vocabulary(*self._train_vocabulary)

    def before_test(self, runner) -> None:
        _set_vocabulary(runner, runner.test_dataloader.dataset)
