"""Forward+backward time and peak memory of LLMFormerHead with priors vs. the no-prior baseline.

"With priors" is the paper config's head (the three prior modules, the prior class boost and the
name pointer); "modules off" is the baseline ablation's, which no prior reaches. Same random
input for both (backbone maps, priors with each object's attribute words and classes, a
171-class vocabulary); paper sizes by default (batch 2, 512x512, 100 queries, 9 layers, 6-layer
pixel decoder). Peak memory is measured for each variant in its own process (CUDA peak
allocation on a GPU, peak RSS growth on a CPU); times in one process, the two variants
alternating step by step. Prints a table, then one JSON line with `time_ratio` and
`memory_ratio` (priors / without).

    python benchmarks/head_bench.py [--size 512] [--batch 2] [--layers 9] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import time
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parents[1] / "segmentation" / "configs"
CONFIGS = {
    "with priors": CONFIG_DIR / "llmformer_vitl14_336_coco-stuff171.py",
    "modules off": CONFIG_DIR / "ablations" / "llmformer_vitl14_336_coco-stuff171_baseline.py",
}
"""Each variant's head switches come from its config: the paper's and the no-prior baseline."""
SWITCHES = (
    "use_semantic_attention",
    "use_scaled_visual_attention",
    "use_relation_attention",
    "prior_class_boost",
    "name_pointer",
)


def _switches(variant: str) -> dict:
    """The variant's head switches, read from its config."""
    from mmengine.config import Config

    head = Config.fromfile(str(CONFIGS[variant])).model.decode_head
    return {name: head[name] for name in SWITCHES}


TEXT_DIMS = 768
NUM_CLASSES = 171


def _head_config(args: argparse.Namespace, switches: dict) -> dict:
    return dict(
        type="LLMFormerHead",
        in_channels=[args.width] * 4,
        channels=args.width,
        num_classes=NUM_CLASSES,
        text_embed_dims=TEXT_DIMS,
        num_queries=args.queries,
        num_layers=args.layers,
        pixel_decoder=dict(num_layers=args.decoder_layers),
        loss_decode=[
            dict(type="CrossEntropyLoss", loss_name="loss_cls_ce", loss_weight=2.0),
            dict(type="CrossEntropyLoss", use_sigmoid=True, loss_name="loss_mask_ce"),
            dict(type="DiceLoss", ignore_index=None, naive_dice=True, loss_name="loss_mask_dice"),
        ],
        **switches,
    )


def _inputs(args: argparse.Namespace, device):
    import torch

    from segmentation.models.llmformer_head import HeadInputs
    from segmentation.models.prior_encoder import PriorTensors
    from segmentation.text.vocabulary import VocabularyEmbedding

    generator = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=generator).to(device)

    batch = args.batch
    features = [randn(batch, args.width, args.size // s, args.size // s) for s in (4, 8, 16, 32)]
    n_obj, n_attr, n_rel = args.objects, args.objects, args.objects - 2

    def present(n):
        return torch.ones(batch, n, dtype=torch.bool, device=device)

    def index(n):
        return torch.randint(0, n_obj, (batch, n), generator=generator).to(device)

    priors = PriorTensors(
        randn(batch, n_obj, TEXT_DIMS),
        present(n_obj),
        randn(batch, n_attr, TEXT_DIMS),
        present(n_attr),
        randn(batch, n_rel, TEXT_DIMS),
        present(n_rel),
        index(n_rel),
        index(n_rel),
        object_attributes=randn(batch, n_obj, TEXT_DIMS),
    )
    vocabulary = VocabularyEmbedding(
        torch.nn.functional.normalize(randn(NUM_CLASSES, TEXT_DIMS), dim=-1),
        torch.arange(NUM_CLASSES, device=device),
        NUM_CLASSES,
    )
    named = torch.randperm(NUM_CLASSES, generator=generator)[:n_obj].to(device)
    object_classes = torch.zeros(batch, 1 + n_obj, NUM_CLASSES, device=device)
    object_classes[:, 1:][:, torch.arange(n_obj), named] = 1
    object_classes[:, 0] = 1 - object_classes[:, 1:].sum(dim=1)
    presence = object_classes[:, 1:].amax(dim=1)
    return HeadInputs(
        features, priors, vocabulary, class_presence=presence, object_classes=object_classes
    )


def _setup(args: argparse.Namespace, name: str):
    """The head of one variant (seeded) and a function running one forward+backward step."""
    import torch
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import segmentation  # noqa: F401  (registers the plugin)

    init_default_scope("mmseg")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    head = MODELS.build(_head_config(args, _switches(name))).to(device)
    inputs = _inputs(args, device)

    def step() -> None:
        outputs = head(inputs)
        loss = sum(c.float().mean() for c in outputs.class_logits) + sum(
            m.float().mean() for m in outputs.mask_logits
        )
        loss.backward()
        head.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return step


def _peak_memory(args: argparse.Namespace, name: str, queue) -> None:
    """In a fresh process: peak memory of one step after a warm-up (CUDA allocation or RSS)."""
    import torch

    step = _setup(args, name)
    rss_before = _current_rss()
    step()
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        queue.put(torch.cuda.max_memory_allocated() - base)
    else:
        step()
        queue.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before)


def _step_times(args: argparse.Namespace) -> dict[str, float]:
    """Median step time per variant, the variants alternating so load changes hit both alike."""
    steps = {name: _setup(args, name) for name in CONFIGS}
    for step in steps.values():
        step()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in CONFIGS}
    for _ in range(args.repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--layers", type=int, default=9)
    parser.add_argument("--decoder-layers", type=int, default=6)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--objects", type=int, default=8, help="object priors per image")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--device", default="cuda" if _cuda_available() else "cpu")
    args = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    peaks = {}
    for name in CONFIGS:
        queue = context.Queue()
        process = context.Process(target=_peak_memory, args=(args, name, queue))
        process.start()
        peaks[name] = queue.get()
        process.join()
    seconds = _step_times(args)
    results = {name: (seconds[name], peaks[name]) for name in CONFIGS}

    print(
        f"device {args.device}, batch {args.batch}, {args.size}x{args.size}, "
        f"{args.queries} queries, {args.layers} layers"
    )
    print(f"{'variant':<14}{'fwd+bwd s':>12}{'peak MiB':>12}")
    for name, (seconds, peak) in results.items():
        print(f"{name:<14}{seconds:>12.3f}{peak / 2**20:>12.1f}")
    (with_time, with_peak), (off_time, off_peak) = results["with priors"], results["modules off"]
    print(
        json.dumps(
            {
                "time_ratio": round(with_time / off_time, 3),
                "memory_ratio": round(with_peak / off_peak, 3),
                "device": args.device,
                "size": args.size,
                "batch": args.batch,
                "seconds_with_priors": round(with_time, 4),
                "seconds_modules_off": round(off_time, 4),
            }
        )
    )


def _current_rss() -> int:
    """Resident set size of this process now, in bytes (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
