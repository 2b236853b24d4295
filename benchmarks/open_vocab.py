"""Do unseen shapes get recognised, and do the LLM's priors add to CLIP? The demo world, end to end.

    .venv/bin/python benchmarks/open_vocab.py --seeds 0,1,2 --iters 1000 \
        --settings priors+clip,clip,name-filter,priors+clip-joint \
        --captions demo,llava-like,empty

Once: build the demo world's tiny CLIP (pretrained on image-caption pairs of every shape; reused
when built). Per seed: generate the demo set, extract its priors with the `file` captioner, train
the tiny config on the seen shapes only, and evaluate on the validation split (seen and unseen
shapes) with the full vocabulary and vocabulary-free. Settings switch the two open-vocabulary
sources: `priors` = prior attention modules + the prior class boost + the name pointer, `clip` =
the CLIP-aligned classifier (inference only, so settings that differ only in it share one training
run). As the tiny config does, settings with priors train only their prior path, on top of the
seed's prior-free run (`clip`'s); the `-joint` rows train the whole model with priors from
scratch, `priors+clip-joint` with prior dropout (`JOINT_DROPOUT`). `no-pointer+clip` drops the
name pointer, `attention+clip` the boost and the pointer, and `boost+clip` the attention modules
and the pointer. `name-filter` is the baseline a gain from priors is judged against: the `clip`
training, each image's vocabulary cut to the classes its priors name (plus background);
`priors+clip+name-filter` cuts `priors+clip`'s vocabulary the same way. Caption
conditions (`--captions`) evaluate every trained model again with the validation images described
by another captioner (`CAPTION_PROFILES`: `llava-like` errs as a real VLM does, `empty` names
nothing); training always uses the demo's captions, and a row under another condition is named
`setting@condition`. mIoU is in percent over the object classes (background excluded), seen and
unseen apart; hmean is their harmonic mean; `seen_with_background` also counts background as a
seen class; `recognised_unseen` is the percent of unseen shapes in validation images that have at
least half their pixels labelled right.
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
    PRIOR_FREE_CONFIG,
    PRIOR_FREE_RUN,
    add_demo_arguments,
    config_iters,
    extract_priors,
    parse_seeds,
    prepare_seed,
    train_on_prior_free,
    train_once,
    train_prior_free,
)

BOOST_OFF = ("model.decode_head.prior_class_boost=0.0",)
POINTER_OFF = ("model.decode_head.name_pointer=None",)
CLIP_OFF = ("model.clip_classifier=None",)
NAME_FILTER = ("model.test_cfg.name_filter=True",)
JOINT = ("model.train_prior_path_only=False",)
"""End-to-end training of the whole model with priors, from scratch (the `-joint` rows)."""
JOINT_DROPOUT = ("model.prior_dropout.image_prob=0.5", "model.prior_dropout.object_prob=0.4")
"""The prior dropout the joint rows train with: no priors for half the images, 2 objects in 5
dropped from the rest (the best of 0.2 / 0.4 and none on seed 7 for joint training)."""
TRAINING_CAPTIONS = "demo"


@dataclass(frozen=True)
class Setting:
    """Which open-vocabulary sources a setting uses, and how its priors were trained: the prior
    path on top of the seed's prior-free run (the default), or `joint`ly from scratch, with
    `JOINT_DROPOUT` if `dropout`; `training` names the trained model."""

    attention: bool
    boost: bool
    pointer: bool
    clip: bool
    name_filter: bool = False
    joint: bool = False
    dropout: bool = False

    @property
    def prior_free(self) -> bool:
        return not (self.attention or self.boost or self.pointer)

    @property
    def training(self) -> str:
        if self.prior_free:
            return PRIOR_FREE_RUN
        name = f"attention{int(self.attention)}-boost{int(self.boost)}-pointer{int(self.pointer)}"
        return name + ("-joint" if self.joint else "") + ("-dropout" if self.dropout else "")

    def training_options(self) -> tuple[str, ...]:
        return (
            (() if self.attention else ATTENTION_OFF)
            + (() if self.boost else BOOST_OFF)
            + (() if self.pointer else POINTER_OFF)
            + (JOINT if self.joint else ())
            + (JOINT_DROPOUT if self.dropout else ())
        )


ALL_PRIORS = dict(attention=True, boost=True, pointer=True)
SETTINGS = {
    "priors+clip": Setting(**ALL_PRIORS, clip=True),
    "clip": Setting(attention=False, boost=False, pointer=False, clip=True),
    "name-filter": Setting(
        attention=False, boost=False, pointer=False, clip=True, name_filter=True
    ),
    "priors+clip+name-filter": Setting(**ALL_PRIORS, clip=True, name_filter=True),
    "priors+clip-joint": Setting(**ALL_PRIORS, clip=True, joint=True, dropout=True),
    "priors+clip-joint-no-dropout": Setting(**ALL_PRIORS, clip=True, joint=True),
    "priors": Setting(**ALL_PRIORS, clip=False),
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
    config: Path,
    checkpoint: Path,
    datasets: Path,
    options: list[str],
    out: Path,
    vocabulary_free: bool,
) -> dict:
    """Seen and unseen mIoU (object classes) of one evaluation on the demo validation split, and
    the seen mIoU with background counted among the seen classes (how `make demo` reported it
    before its seen classes excluded background), and the share of unseen shapes recognised."""
    from segmentation.demo.scenes import BACKGROUND
    from segmentation.evaluation.run import EvalRequest, evaluate_checkpoint

    request = EvalRequest(
        config,
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


def condition_priors(base: Path, seed: int, args: argparse.Namespace, condition: str) -> list[str]:
    """Options that point an evaluation at the validation priors of a caption condition: the
    seed's pictures described by that `CAPTION_PROFILES` entry, extracted into a store of its
    own (the training's store keeps the demo's)."""
    from segmentation.demo import DemoSpec, write_captions

    folder = base / f"captions-{condition}"
    spec = DemoSpec(seed, args.num_train, args.num_val, captions=condition)
    captions = folder / "captions.jsonl"
    if not captions.exists():
        write_captions(spec, captions)
    prior_set_id = extract_priors(base / "datasets" / "demo", folder / "store", captions)
    return [f"prior_store_root={folder / 'store'}", f"prior_set_id={prior_set_id}"]


def row_name(setting: str, condition: str) -> str:
    return setting if condition == TRAINING_CAPTIONS else f"{setting}@{condition}"


def train_setting(
    base: Path, setting: Setting, common: list[str], iters: int, record: dict
) -> tuple[Path, Path, list[str]]:
    """The config, last checkpoint and options of the run a setting evaluates (trained unless
    reused): the seed's prior-free run, a prior path on top of it, or a joint training."""
    if setting.prior_free:
        return PRIOR_FREE_CONFIG, train_prior_free(base, common, iters, record), common
    extra = list(setting.training_options())
    if setting.joint:
        options = [*common, *extra]
        return CONFIG, train_once(base / setting.training, CONFIG, options, iters, record), options
    checkpoint = train_on_prior_free(base, setting.training, common, extra, iters, record)
    return CONFIG, checkpoint, [*common, *extra]


def run_seed(
    seed: int,
    settings: list[str],
    conditions: list[str],
    args: argparse.Namespace,
    clip: Path,
    record: dict,
) -> dict[str, dict]:
    """Every (setting, caption condition) row's figures for one seed; settings that share a
    training share its run, and conditions only change the evaluation's priors."""
    base, common = prepare_seed(seed, args, clip)
    data_root = base / "datasets" / "demo"
    priors = {
        condition: condition_priors(base, seed, args, condition)
        for condition in conditions
        if condition != TRAINING_CAPTIONS
    }
    results = {}
    for name in settings:
        setting = SETTINGS[name]
        config, checkpoint, training = train_setting(base, setting, common, args.iters, record)
        options = (
            training
            + ([] if setting.clip else list(CLIP_OFF))
            + (list(NAME_FILTER) if setting.name_filter else [])
        )
        for condition in conditions:
            started = time.monotonic()
            row = row_name(name, condition)
            out = base / setting.training / f"eval-{name}-{condition}"
            evaluation = [*options, *priors.get(condition, [])]
            full = evaluate(config, checkpoint, data_root.parent, evaluation, out / "full", False)
            free = evaluate(config, checkpoint, data_root.parent, evaluation, out / "free", True)
            results[row] = {
                "seen": full["seen"],
                "unseen": full["unseen"],
                "hmean": round(harmonic_mean(full["seen"], full["unseen"]), 2),
                "vocab_free_seen": free["seen"],
                "vocab_free_unseen": free["unseen"],
                "seen_with_background": full["seen_with_background"],
                "recognised_unseen": full["recognised_unseen"],
            }
            print(f"seed {seed} {row}: {results[row]} ({time.monotonic() - started:.0f} s)")
    return results


def print_gains(means: dict[str, dict], conditions: list[str]) -> None:
    """Each condition's prior gain over the baselines a reviewer asks for first."""
    for condition in conditions:
        priors = means.get(row_name("priors+clip", condition))
        for baseline in ("name-filter", "clip"):
            other = means.get(row_name(baseline, condition))
            if priors and other:
                print(
                    f"{condition:>10}: priors+clip - {baseline}: seen "
                    f"{priors['seen'] - other['seen']:+.2f}, unseen "
                    f"{priors['unseen'] - other['unseen']:+.2f}"
                )


def parse_choices(parser: argparse.ArgumentParser, text: str, known, option: str) -> list[str]:
    """Comma-separated names out of `known`, or one parser error line."""
    names = text.split(",")
    unknown = [name for name in names if name not in known]
    if unknown:
        parser.error(f"unknown {option} {unknown}; known: {', '.join(known)}")
    return names


def main() -> None:
    from segmentation.demo import CAPTION_PROFILES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_demo_arguments(parser, "work_dirs/open_vocab")
    parser.add_argument(
        "--settings",
        default="priors+clip,clip,name-filter,priors+clip-joint",
        help=f"comma-separated, of {', '.join(SETTINGS)}",
    )
    parser.add_argument(
        "--captions",
        default=TRAINING_CAPTIONS,
        help=f"caption conditions, comma-separated, of {', '.join(CAPTION_PROFILES)}",
    )
    args = parser.parse_args()
    seeds = parse_seeds(parser, args.seeds)
    settings = parse_choices(parser, args.settings, SETTINGS, "settings")
    conditions = parse_choices(parser, args.captions, CAPTION_PROFILES, "caption conditions")
    args.iters = args.iters or config_iters()

    from segmentation.demo.tiny_clip import ensure_tiny_clip

    clip = args.work_dir / "tiny_clip"
    record = ensure_tiny_clip(clip)
    per_seed = {seed: run_seed(seed, settings, conditions, args, clip, record) for seed in seeds}
    rows = list(per_seed[seeds[0]])
    means = {
        row: {
            figure: round(statistics.mean(per_seed[s][row][figure] for s in seeds), 2)
            for figure in FIGURES
        }
        for row in rows
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
    width = max(len(row) for row in rows)
    print(f"{'setting':>{width}} " + " ".join(f"{figure:>17}" for figure in FIGURES))
    for row in rows:
        print(f"{row:>{width}} " + " ".join(f"{means[row][f]:>17.2f}" for f in FIGURES))
    if "clip" in means:
        print(
            f"how much of CLIP reaches the segmenter: dense zero-shot unseen "
            f"{shot['dense']['unseen']}% -> clip row unseen mIoU {means['clip']['unseen']:.2f}"
        )
    print_gains(means, conditions)
    print(json.dumps({"seeds": seeds, "iters": args.iters, "runs": means}))


if __name__ == "__main__":
    main()
