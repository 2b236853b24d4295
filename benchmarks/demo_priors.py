"""Do the prior attention modules help on the demo set? Tiny LLMFormer with them on vs. off.

    .venv/bin/python benchmarks/demo_priors.py --seeds 0,1,2 --iters 1000

Per seed: generate the demo set, extract its priors with the `file` captioner over the set's own
synthetic captions, train the tiny config's prior path on the seed's prior-free model with the
prior modules and with semantic, scaled visual and relation attention switched off (same seed,
same data, same iterations, the same prior-free model), and evaluate both on the
validation split (mIoU over all classes, and over the seen and unseen shapes' object classes).
"Off" switches only the three modules: the prior class boost, the name pointer and the CLIP
classifier stay on in both, so this isolates attention; `benchmarks/open_vocab.py` switches the
rest. Runs are reused when their config, options, iterations and tiny CLIP build match.
Prints a table, then as the last line one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from _demo_world import (
    ATTENTION_OFF,
    CONFIG,
    add_demo_arguments,
    config_iters,
    parse_seeds,
    prepare_seed,
    train_on_prior_free,
)

METRICS = ("mIoU", "mIoU_seen", "mIoU_unseen")


def evaluate(run_dir: Path, checkpoint: Path, options: list[str]) -> dict:
    """mIoU over all classes, seen and unseen shapes of a checkpoint on the demo validation
    split."""
    from segmentation.evaluation.run import EvalRequest, evaluate_checkpoint

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


def run_seed(seed: int, args: argparse.Namespace, clip: Path, record: dict) -> dict:
    """The seed's figures with priors and with the three prior attention modules off."""
    base, common = prepare_seed(seed, args, clip)
    figures: dict = {"seed": seed}
    for name, extra in (("priors", ()), ("attention_off", ATTENTION_OFF)):
        checkpoint = train_on_prior_free(base, name, common, list(extra), args.iters, record)
        figures[name] = evaluate(base / name, checkpoint, [*common, *extra])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_demo_arguments(parser, "work_dirs/demo_priors")
    args = parser.parse_args()
    seeds = parse_seeds(parser, args.seeds)
    args.iters = args.iters or config_iters()

    from segmentation.demo.tiny_clip import ensure_tiny_clip

    clip = args.work_dir / "tiny_clip"
    record = ensure_tiny_clip(clip)
    runs = [run_seed(seed, args, clip, record) for seed in seeds]
    print(f"{'seed':>4} {'run':>13} " + " ".join(f"{m:>11}" for m in METRICS))
    for run in runs:
        for name in ("priors", "attention_off"):
            values = " ".join(f"{run[name].get(m, float('nan')):>11.2f}" for m in METRICS)
            print(f"{run['seed']:>4} {name:>13} {values}")
    gains = [run["priors"]["mIoU_seen"] - run["attention_off"]["mIoU_seen"] for run in runs]
    summary = {
        "iters": args.iters,
        "num_train": args.num_train,
        "runs": runs,
        "mean_seen_gain": round(statistics.mean(gains), 2),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
