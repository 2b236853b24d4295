"""Do LLM-style priors help on the demo set? Tiny LLMFormer with priors vs. prior modules off.

    .venv/bin/python benchmarks/demo_priors.py --seeds 0,1,2 --iters 2000

Per seed: generate the demo set, extract its priors with the `file` captioner over the set's own
synthetic captions, train the tiny config with priors and with semantic, scaled visual and
relation attention switched off (same seed, same data, same iterations), and evaluate both on the
validation split (mIoU over all, seen and unseen classes; chance is about 1/9 per pixel class).
Prints a table, then as the last line one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from _demo_world import extract_priors

CONFIG = Path("segmentation/configs/llmformer_tiny_demo.py")
PRIOR_MODULES_OFF = (
    "model.decode_head.use_semantic_attention=False",
    "model.decode_head.use_scaled_visual_attention=False",
    "model.decode_head.use_relation_attention=False",
)
METRICS = ("mIoU", "mIoU_seen", "mIoU_unseen")


def train_and_evaluate(
    run_dir: Path, common: list[str], extra: tuple[str, ...], iters: int
) -> dict:
    """Train the tiny config, then evaluate its last checkpoint on the demo validation split."""
    from segmentation.evaluation.run import EvalRequest, evaluate_checkpoint
    from segmentation.training import TrainOptions, load_training_config, train

    options = [*common, *extra]
    cfg = load_training_config(TrainOptions(CONFIG, run_dir, iters, False, options))
    train(cfg)
    checkpoint = run_dir / f"iter_{iters}.pth"
    request = EvalRequest(
        CONFIG,
        checkpoint,
        ("demo",),
        run_dir.parent / "datasets",
        run_dir / "eval",
        cfg_options=tuple(options),
    )
    row = evaluate_checkpoint(request).rows[0]
    return {"mIoU": row.miou, **{k: v for k, v in row.extra.items() if k in METRICS}}


def run_seed(seed: int, args: argparse.Namespace) -> dict:
    from segmentation.demo import DemoSpec, write_demo
    from segmentation.demo.tiny_clip import ensure_tiny_clip, tiny_clip_options

    base = args.work_dir / f"seed{seed}"
    data_root = base / "datasets" / "demo"
    write_demo(DemoSpec(seed, args.num_train, args.num_val), data_root, progress=False)
    prior_set_id = extract_priors(data_root, base / "store")
    common = [
        f"randomness.seed={seed}",
        f"prior_store_root={base / 'store'}",
        f"prior_set_id={prior_set_id}",
        f"train_dataloader.dataset.data_root={data_root}",
        f"val_dataloader.dataset.data_root={data_root}",
        "train_cfg.val_interval=100000",
        *tiny_clip_options(args.work_dir / "tiny_clip"),
    ]
    ensure_tiny_clip(args.work_dir / "tiny_clip")
    return {
        "seed": seed,
        "priors": train_and_evaluate(base / "priors", common, (), args.iters),
        "baseline": train_and_evaluate(base / "baseline", common, PRIOR_MODULES_OFF, args.iters),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated demo/training seeds")
    parser.add_argument("--iters", type=int, default=2000, help="training iterations per run")
    parser.add_argument("--num-train", type=int, default=400)
    parser.add_argument("--num-val", type=int, default=100)
    parser.add_argument("--work-dir", type=Path, default=Path("work_dirs/demo_priors"))
    args = parser.parse_args()
    runs = [run_seed(int(seed), args) for seed in args.seeds.split(",")]
    print(f"{'seed':>4} {'run':>8} " + " ".join(f"{m:>11}" for m in METRICS))
    for run in runs:
        for name in ("priors", "baseline"):
            values = " ".join(f"{run[name].get(m, float('nan')):>11.2f}" for m in METRICS)
            print(f"{run['seed']:>4} {name:>8} {values}")
    gains = [run["priors"]["mIoU_seen"] - run["baseline"]["mIoU_seen"] for run in runs]
    summary = {
        "iters": args.iters,
        "num_train": args.num_train,
        "runs": runs,
        "mean_seen_gain": round(statistics.mean(gains), 2),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
