"""What the demo-world benchmarks share (not a benchmark): the tiny configs, a seed's demo set and
priors, training runs reused when their config, options, iterations, tiny CLIP build and the run
they start from match, and argument checks. A demo set is reused by seed and sizes: after
changing the generator, start from an empty work dir."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

CONFIG = Path(__file__).resolve().parents[1] / "segmentation/configs/llmformer_tiny_demo.py"
PRIOR_FREE_CONFIG = CONFIG.with_name("llmformer_tiny_demo_prior_free.py")
"""The tiny model's first stage: `CONFIG` trains only its prior path, on top of this."""
PRIOR_FREE_RUN = "prior-free"
"""A seed's run of PRIOR_FREE_CONFIG, shared by every setting that starts from it."""
ATTENTION_OFF = (
    "model.decode_head.use_semantic_attention=False",
    "model.decode_head.use_scaled_visual_attention=False",
    "model.decode_head.use_relation_attention=False",
)
RUN_STAMP = "benchmark_run.json"
"""Next to a run's checkpoints: what it was trained with (`run_identity`)."""


def config_iters() -> int:
    """The tiny config's training iterations, as `make demo` trains."""
    from mmengine.config import Config

    return int(Config.fromfile(str(CONFIG)).train_cfg.max_iters)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_seeds(parser: argparse.ArgumentParser, text: str) -> list[int]:
    """Comma-separated distinct non-negative seeds, or one parser error line."""
    try:
        seeds = [int(seed) for seed in text.split(",")]
    except ValueError:
        parser.error(f"--seeds takes comma-separated integers, got {text!r}")
    if min(seeds) < 0 or len(set(seeds)) != len(seeds):
        parser.error(f"--seeds must be distinct and non-negative, got {text!r}")
    return seeds


def add_demo_arguments(parser: argparse.ArgumentParser, work_dir: str) -> None:
    """The arguments both demo-world benchmarks take, iterations defaulting to the config's."""
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated demo/training seeds")
    parser.add_argument(
        "--iters",
        type=positive_int,
        default=None,
        help="training iterations per run (default: the tiny config's, as `make demo` trains)",
    )
    parser.add_argument("--num-train", type=positive_int, default=400)
    parser.add_argument("--num-val", type=positive_int, default=100)
    parser.add_argument("--work-dir", type=Path, default=Path(work_dir))


def extract_priors(data_root: Path, store: Path, captions: Path | None = None) -> str:
    """Stage 1 over the demo set with the `file` captioner reading `captions` (the set's own
    by default); returns the prior set id."""
    from prior_extraction.captioners.file import FileCaptioner
    from prior_extraction.parsing import CaptionParser
    from prior_extraction.run import ExtractionConfig, run_extraction
    from prior_extraction.sources import build_source
    from storage import PriorStore

    source = build_source(dataset="demo", data_root=data_root)
    captioner = FileCaptioner(captions or data_root / "captions.jsonl")
    config = ExtractionConfig(show_progress=False)
    return run_extraction(
        source, captioner, CaptionParser(), PriorStore(store), config
    ).prior_set_id


def prepare_seed(seed: int, args: argparse.Namespace, clip: Path) -> tuple[Path, list[str]]:
    """A seed's folder (its demo set, of these sizes, and priors) and the training options its
    runs share. Sizes name the folder, so a set and its priors are never reused for others."""
    from segmentation.demo import DemoSpec, write_demo
    from segmentation.demo.tiny_clip import tiny_clip_options

    base = args.work_dir / f"seed{seed}-{args.num_train}x{args.num_val}"
    data_root = base / "datasets" / "demo"
    if not (data_root / "meta.json").exists():
        write_demo(DemoSpec(seed, args.num_train, args.num_val), data_root, progress=False)
    store = base / "store"
    prior_set_id = extract_priors(data_root, store)
    options = [
        f"randomness.seed={seed}",
        f"prior_store_root={store}",
        f"prior_set_id={prior_set_id}",
        f"train_dataloader.dataset.data_root={data_root}",
        f"val_dataloader.dataset.data_root={data_root}",
        "train_cfg.val_interval=100000",
        *tiny_clip_options(clip),
    ]
    return base, options


def run_identity(config: Path, options: list[str], iters: int, clip_record: dict) -> dict:
    """What a training run depends on besides its data and the run it starts from: the config's
    text (with its bases), options, iterations and the tiny CLIP build."""
    from mmengine.config import Config

    config_text = Config.fromfile(str(config)).pretty_text
    return {
        "config": config.name,
        "config_text": hashlib.sha256(config_text.encode()).hexdigest()[:12],
        "options": options,
        "iters": iters,
        "tiny_clip": clip_record["spec"],
    }


def train_once(
    run_dir: Path,
    config: Path,
    options: list[str],
    iters: int,
    clip_record: dict,
    load_from: Path | None = None,
) -> Path:
    """Train `config` (from the checkpoint `load_from` of another such run, if given) unless
    `run_dir` holds a finished run of the same identity; returns the run's last checkpoint."""
    from segmentation.training import TrainOptions, load_training_config, train

    identity = run_identity(config, options, iters, clip_record)
    if load_from is not None:
        identity["load_from"] = json.loads((load_from.parent / RUN_STAMP).read_text())
        options = [*options, f"load_from={load_from}"]
    stamp, checkpoint = run_dir / RUN_STAMP, run_dir / f"iter_{iters}.pth"
    if checkpoint.exists() and stamp.exists() and json.loads(stamp.read_text()) == identity:
        return checkpoint
    stamp.unlink(missing_ok=True)  # a run that fails leaves no stamp to match its checkpoints
    train(load_training_config(TrainOptions(config, run_dir, iters, False, options)))
    stamp.write_text(json.dumps(identity, indent=2) + "\n")
    return checkpoint


def train_prior_free(base: Path, common: list[str], iters: int, clip_record: dict) -> Path:
    """The seed's prior-free run (PRIOR_FREE_CONFIG with `common`) in `base`; its last
    checkpoint."""
    return train_once(base / PRIOR_FREE_RUN, PRIOR_FREE_CONFIG, common, iters, clip_record)


def train_on_prior_free(
    base: Path, name: str, common: list[str], extra: list[str], iters: int, clip_record: dict
) -> Path:
    """`CONFIG`'s prior path with `common` and `extra` options, trained in `base / name` on top
    of the seed's prior-free run; its last checkpoint."""
    prior_free = train_prior_free(base, common, iters, clip_record)
    return train_once(base / name, CONFIG, [*common, *extra], iters, clip_record, prior_free)
