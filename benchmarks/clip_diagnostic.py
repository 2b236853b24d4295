"""Where does CLIP's knowledge of unseen shapes get lost? One trained demo model, stage by stage.

    .venv/bin/python benchmarks/clip_diagnostic.py \
        --run-dir work_dirs/open_vocab/seed7-400x100/prior-free

For every validation image of the run's demo set, the trained model's last decoder step is read
apart and each stage classifies pixels on its own: `clip-dense` (each CLIP patch against the
vocabulary, upsampled), `clip-true-masks` (CLIP mask-pooled under each true class region, as the
tiny CLIP's dense zero-shot accuracy; background pixels kept as background), `in-vocab` (the
learnt classifier alone), `clip-pred-masks` (CLIP under the predicted masks, the learnt void
kept: the ensemble with alpha = beta = 1) and `ensemble` (the model as evaluated). Per stage:
pixel accuracy of each unseen shape (share of its pixels labelled right), seen shapes' mean pixel
accuracy, mIoU of seen and unseen shapes, and where unseen pixels go (background, a seen shape).
`mask-recall` is the mean best IoU of any query's mask with each unseen shape's true region.
Prints a table, then as the last line one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _demo_world import CONFIG, RUN_STAMP

STAGES = ("clip-dense", "clip-true-masks", "in-vocab", "clip-pred-masks", "ensemble")


def load_run(run_dir: Path, checkpoint: str, extra: list[str]):
    """The run's model (its benchmark options, then `extra`) with the checkpoint's weights, and
    its config."""
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint
    from mmseg.registry import MODELS

    import segmentation  # noqa: F401  (registers LLMFormer's parts in MMSeg)
    from segmentation.training import TrainOptions, load_training_config

    stamp = json.loads((run_dir / RUN_STAMP).read_text())
    config = CONFIG.with_name(stamp["config"])
    cfg = load_training_config(TrainOptions(config, cfg_options=[*stamp["options"], *extra]))
    init_default_scope("mmseg")
    model = MODELS.build(cfg.model)
    load_checkpoint(model, str(run_dir / checkpoint), map_location="cpu", logger="silent")
    return model.eval(), cfg


def validation_batches(cfg, batch_size: int):
    """The validation split through the config's pipeline (priors included), preprocessed."""
    from mmengine.dataset import pseudo_collate
    from mmseg.registry import DATASETS

    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    for start in range(0, len(dataset), batch_size):
        batch = pseudo_collate(
            [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        )
        yield dataset.metainfo, batch


@torch.no_grad()
def stage_scores(model, data: dict) -> tuple:
    """Per-pixel class scores (B, C, H, W) of every stage but `clip-true-masks`, the last step's
    mask logits, CLIP's dense embeddings, the vocabulary embedding and CLIP's logit scale."""
    from segmentation.models.clip_classifier import clip_logits, geometric_ensemble, mask_pool
    from segmentation.models.llmformer_head import CLIPFeatures, HeadInputs

    inputs, samples = data["inputs"], data["data_samples"]
    head = model.decode_head
    graphs = model._graphs(samples, len(inputs))
    vocabulary = model._current_vocabulary()
    classes = model.call_classes([vocabulary] * len(inputs), graphs)
    tower = model.backbone.tower
    states = tower.run(inputs)
    dense = model.clip_dense(tower, states, inputs)
    clip = CLIPFeatures(dense, model.clip_dense.logit_scale, classes.seen)
    head_inputs = HeadInputs(
        model.backbone(inputs, states),
        model.prior_encoder(graphs),
        classes.embedding,
        classes.presence,
        clip,
        classes.object_classes,
    )
    outputs = head.forward(head_inputs)
    class_logits, mask_logits = outputs.class_logits[-1], outputs.mask_logits[-1]
    metas = [sample.metainfo for sample in samples]
    size = inputs.shape[-2:]
    terms = outputs.prior_terms[-1]
    out_vocab = head.add_prior_terms(
        clip_logits(mask_pool(dense, mask_logits), classes.embedding, clip.logit_scale),
        terms,
        has_void=False,
    )
    clip_only = geometric_ensemble(class_logits, out_vocab, clip.seen, alpha=1.0, beta=1.0)
    ensembled = head.ensemble_with_clip(class_logits, mask_logits, terms, head_inputs)
    patch_logits = clip_logits(dense.permute(0, 2, 3, 1), classes.embedding, clip.logit_scale)
    scores = {
        "clip-dense": F.interpolate(patch_logits.permute(0, 3, 1, 2), size=size, mode="nearest"),
        "in-vocab": head.predict_by_feat((class_logits, mask_logits), metas),
        "clip-pred-masks": head.predict_by_feat((clip_only, mask_logits), metas),
        "ensemble": head.predict_by_feat((ensembled, mask_logits), metas),
    }
    return scores, mask_logits, dense, classes.embedding, clip.logit_scale


def true_mask_labels(dense, labels: torch.Tensor, embedding, logit_scale) -> torch.Tensor:
    """Each true object-class region of one image labelled by CLIP mask-pooled under it (area
    weights on the patch grid, as the tiny CLIP's zero-shot test); background kept."""
    from segmentation.models.clip_classifier import clip_logits

    predicted = torch.zeros_like(labels)
    for class_id in labels.unique().tolist():
        if class_id == 0:
            continue
        region = (labels == class_id).float()[None, None]
        weights = F.adaptive_avg_pool2d(region, dense.shape[-2:])[0, 0]
        pooled = (dense * weights).sum(dim=(1, 2)) / weights.sum()
        logits = clip_logits(pooled[None], embedding, logit_scale)[0]
        logits[0] = -torch.inf  # object regions only: which shape does CLIP see?
        predicted[labels == class_id] = int(logits.argmax())
    return predicted


class Tally:
    """Confusion counts (true x predicted) over the validation pixels of one stage."""

    def __init__(self, num_classes: int) -> None:
        self.counts = np.zeros((num_classes, num_classes), dtype=np.int64)

    def add(self, truth: np.ndarray, predicted: np.ndarray) -> None:
        n = len(self.counts)
        self.counts += np.bincount(truth.ravel() * n + predicted.ravel(), minlength=n * n).reshape(
            n, n
        )

    def figures(self, classes: list[str], seen: list[str], unseen: list[str]) -> dict:
        counts = self.counts
        accuracy = counts.diagonal() / np.maximum(counts.sum(axis=1), 1)
        union = counts.sum(axis=0) + counts.sum(axis=1) - counts.diagonal()
        iou = counts.diagonal() / np.maximum(union, 1)
        seen_ids = [classes.index(name) for name in seen]
        unseen_ids = [classes.index(name) for name in unseen]
        unseen_pixels = counts[unseen_ids].sum(axis=0)
        share = unseen_pixels / max(unseen_pixels.sum(), 1)
        figures = {f"acc_{classes[i]}": 100 * accuracy[i] for i in unseen_ids}
        figures.update(
            acc_seen=100 * accuracy[seen_ids].mean(),
            miou_seen=100 * iou[seen_ids].mean(),
            miou_unseen=100 * iou[unseen_ids].mean(),
            unseen_to_background=100 * share[0],
            unseen_to_seen=100 * share[seen_ids].sum(),
        )
        return {key: round(float(value), 1) for key, value in figures.items()}


def best_mask_iou(mask_logits: torch.Tensor, labels: torch.Tensor, class_id: int) -> float:
    """Best IoU of one query's binarised mask (at the label size) with a class's true region."""
    masks = F.interpolate(mask_logits[None], size=labels.shape, mode="bilinear")[0] > 0
    truth = labels == class_id
    intersection = (masks & truth).sum(dim=(1, 2)).float()
    union = (masks | truth).sum(dim=(1, 2)).float()
    return float((intersection / union.clamp(min=1)).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True, help="a trained open_vocab run")
    parser.add_argument("--checkpoint", default="iter_1000.pth")
    parser.add_argument("--cfg-options", nargs="*", default=[], help="evaluation overrides")
    parser.add_argument("--batch-size", type=int, default=10)
    args = parser.parse_args()
    if not (args.run_dir / RUN_STAMP).is_file():
        parser.error(f"{args.run_dir} holds no {RUN_STAMP} (not an open_vocab run)")
    torch.set_num_threads(1)
    model, cfg = load_run(args.run_dir, args.checkpoint, args.cfg_options)
    tallies, recalls = None, []
    for metainfo, batch in validation_batches(cfg, args.batch_size):
        classes = list(metainfo["classes"])
        if tallies is None:
            model.set_vocabulary(classes)
            tallies = {stage: Tally(len(classes)) for stage in STAGES}
            unseen_ids = [classes.index(name) for name in metainfo["unseen_classes"]]
        data = model.data_preprocessor(batch, False)
        scores, mask_logits, dense, embedding, scale = stage_scores(model, data)
        for index, sample in enumerate(data["data_samples"]):
            labels = sample.gt_sem_seg.data[0].long()
            truth = labels.numpy()
            for stage, stage_score in scores.items():
                tallies[stage].add(truth, stage_score[index].argmax(0).numpy())
            predicted = true_mask_labels(dense[index], labels, embedding, scale)
            tallies["clip-true-masks"].add(truth, predicted.numpy())
            recalls += [
                best_mask_iou(mask_logits[index], labels, i)
                for i in unseen_ids
                if (labels == i).any()
            ]
    seen, unseen = metainfo["seen_classes"], metainfo["unseen_classes"]
    figures = {stage: tally.figures(classes, seen, unseen) for stage, tally in tallies.items()}
    columns = list(figures[STAGES[0]])
    print(f"{'stage':>16} " + " ".join(f"{column:>21}" for column in columns))
    for stage in STAGES:
        print(f"{stage:>16} " + " ".join(f"{figures[stage][c]:>21.1f}" for c in columns))
    mask_recall = round(100 * float(np.mean(recalls)), 1)
    print(f"mask-recall (mean best query IoU with each unseen shape's region): {mask_recall}")
    print(json.dumps({"run": str(args.run_dir), "stages": figures, "mask_recall": mask_recall}))


if __name__ == "__main__":
    main()
