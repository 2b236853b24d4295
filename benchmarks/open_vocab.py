"""Do unseen shapes get recognised, and do the LLM's priors add to CLIP? The demo world, end to end.

    .venv/bin/python benchmarks/open_vocab.py --seeds 0,1,2 --iters 1000 \
        --settings priors+clip,clip,priors,none

Once: build the demo world's tiny CLIP (pretrained on image-caption pairs of every shape; reused
when built). Per seed: generate the demo set, extract its priors with the `file` captioner, train
the tiny config on the seen shapes only, and evaluate on the validation split (seen and unseen
shapes) with the full vocabulary and vocabulary-free. Settings switch the two open-vocabulary
sources: `priors` = prior attention modules + the prior class boost + the name pointer, `clip` =
the CLIP-aligned classifier (inference only, so settings that differ only in it share one training
run); `no-pointer+clip` drops the name pointer, `attention+clip` the boost and the pointer, and
`boost+clip` the attention modules and the pointer. mIoU is in percent over the
object classes (background excluded), seen and unseen apart; hmean is their harmonic mean;
`seen_with_background` also counts background as a seen class; `recognised_unseen` is the percent
of unseen shapes in validation images that have at least half their pixels labelled right.
Prints a table, then as the last line one JSON object with the means over seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _demo_world import (
    ATTENTION_OFF,
    CONFIG,
    add_demo_arguments,
    config_iters,
    parse_seeds,
    prepare_seed,
    train_once,
)

BOOST_OFF = ("model.decode_head.prior_class_boost=0.0",)
POINTER_OFF = ("model.decode_head.name_pointer=None",)
CLIP_OFF = ("model.clip_classifier=None",)


@dataclass(frozen=True)
class Setting:
    """Which open-vocabulary sources a setting uses; `training` names the trained model."""

    attention: bool
    boost: bool
    pointer: bool
    clip: bool

    @property
    def training(self) -> str:
        return f"attention{int(self.attention)}-boost{int(self.boost)}-pointer{int(self.pointer)}"

    def training_options(self) -> tuple[str, ...]:
        return (
            (() if self.attention else ATTENTION_OFF)
            + (() if self.boost else BOOST_OFF)
            + (() if self.pointer else POINTER_OFF)
        )


SETTINGS = {
    "priors+clip": Setting(attention=True, boost=True, pointer=True, clip=True),
    "clip": Setting(attention=False, boost=False, pointer=False, clip=True),
    "priors": Setting(attention=True, boost=True, pointer=True, clip=False),
    "none": Setting(attention=False, boost=False, pointer=False, clip=False),
    "no-pointer+clip": Setting(attention=True, boost=True, pointer=False, clip=True),
    "attention+clip": Setting(attention=True, boost=False, pointer=False, clip=True),
    "boost+clip": Setting(attention=False, boost=True, pointer=False, clip=True),
}
FIGURES = (
    "seen",
    "unseen",
    "hmean",
    "vocab_free_seen",
    "vocab_free_unseen",
    "seen_with_background",
    "recognised_unseen",
)


def evaluate(
    checkpoint: Path, datasets: Path, options: list[str], out: Path, vocabulary_free: bool
) -> dict:
    """Seen and unseen mIoU (object classes) of one evaluation on the demo validation split, and
    the seen mIoU with background counted among the seen classes (how `make demo` reported it
    before its seen classes excluded background), and the share of unseen shapes recognised."""
    from segmentation.demo.scenes import BACKGROUND
    from segmentation.evaluation.run import EvalRequest, evaluate_checkpoint

    request = EvalRequest(
        CONFIG,
        checkpoint,
        ("demo",),
        datasets,
        out,
        vocabulary_free=vocabulary_free,
        cfg_options=tuple(options),
    )
    table = evaluate_checkpoint(request)
    row, detail = table.rows[0], table.details[0]
    seen = json.loads((datasets / "demo" / "meta.json").read_text())["seen"]
    with_background = [detail.classes.index(name) for name in (BACKGROUND, *seen)]
    return {
        "seen": row.extra["mIoU_seen"],
        "unseen": row.extra["mIoU_unseen"],
        "seen_with_background": round(100 * float(np.nanmean(detail.iou[with_background])), 2),
        "recognised_unseen": row.extra["recognised_unseen"],
    }


def harmonic_mean(a: float, b: float) -> float:
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def run_seed(
    seed: int, settings: list[str], args: argparse.Namespace, clip: Path, record: dict
) -> dict[str, dict]:
    """Every setting's figures for one seed; settings that share a training share its run."""
    base, common = prepare_seed(seed, args, clip)
    data_root = base / "datasets" / "demo"
    results = {}
    for name in settings:
        setting = SETTINGS[name]
        started = time.monotonic()
        training = [*common, *setting.training_options()]
        checkpoint = train_once(base / setting.training, training, args.iters, record)
        options = training + ([] if setting.clip else list(CLIP_OFF))
        out = base / setting.training / f"eval-{name}"
        full = evaluate(checkpoint, data_root.parent, options, out / "full", False)
        free = evaluate(checkpoint, data_root.parent, options, out / "free", True)
        results[name] = {
            "seen": full["seen"],
            "unseen": full["unseen"],
            "hmean": round(harmonic_mean(full["seen"], full["unseen"]), 2),
            "vocab_free_seen": free["seen"],
            "vocab_free_unseen": free["unseen"],
            "seen_with_background": full["seen_with_background"],
            "recognised_unseen": full["recognised_unseen"],
        }
        print(f"seed {seed} {name}: {results[name]} ({time.monotonic() - started:.0f} s)")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_demo_arguments(parser, "work_dirs/open_vocab")
    parser.add_argument(
        "--settings",
        default="priors+clip,clip,priors,none",
        help=f"comma-separated, of {', '.join(SETTINGS)}",
    )
    args = parser.parse_args()
    seeds = parse_seeds(parser, args.seeds)
    settings = args.settings.split(",")
    unknown = [name for name in settings if name not in SETTINGS]
    if unknown:
        parser.error(f"unknown settings {unknown}; known: {', '.join(SETTINGS)}")
    args.iters = args.iters or config_iters()

    from segmentation.demo.tiny_clip import ensure_tiny_clip

    clip = args.work_dir / "tiny_clip"
    record = ensure_tiny_clip(clip)
    per_seed = {seed: run_seed(seed, settings, args, clip, record) for seed in seeds}
    means = {
        name: {
            figure: round(statistics.mean(per_seed[s][name][figure] for s in seeds), 2)
            for figure in FIGURES
        }
        for name in settings
    }
    shot = record["zero_shot"]
    print(
        f"tiny CLIP zero-shot accuracy (held-out demo crops): seen {shot['crop']['seen']}% "
        f"unseen {shot['crop']['unseen']}%; mask-pooled dense: seen {shot['dense']['seen']}% "
        f"unseen {shot['dense']['unseen']}%"
    )
    print(
        f"mIoU % over object classes (background excluded but in seen_with_background), "
        f"mean of seeds {seeds}, {args.iters} iters"
    )
    print(f"{'setting':>15} " + " ".join(f"{figure:>17}" for figure in FIGURES))
    for name in settings:
        print(f"{name:>15} " + " ".join(f"{means[name][f]:>17.2f}" for f in FIGURES))
    print(json.dumps({"seeds": seeds, "iters": args.iters, "runs": means}))


if __name__ == "__main__":
    main()
