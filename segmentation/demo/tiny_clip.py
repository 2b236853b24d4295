"""The demo world's vision-language pretraining: a tiny CLIP that has seen every shape.

Web-scale CLIP has seen hexagons although COCO-Stuff never labels one; this is the demo's
stand-in. A transformers `CLIPModel` (vision and text towers with their projections) and a CLIP
BPE tokenizer built for the demo world's words are trained contrastively on synthetic
image-caption pairs of every shape, seen and unseen. Pair images come from their own random
streams (never a demo training or evaluation image) and captions are plain descriptions ("a
photo of a small striped hexagon"), not label names. Besides CLIP's image-caption loss, each
object's region is contrasted with its own phrase of the caption (RegionCLIP's region-text
alignment), so the dense features the segmentation classifier pools are text-aligned too. The
result is saved with `save_pretrained` and read back by the loaders of a real CLIP checkpoint
(`CLIPVisionTower`, `CLIPTextTower`, `CLIPDenseEmbedder`).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from segmentation.demo.generator import image_rng
from segmentation.demo.scenes import (
    BACKGROUNDS,
    CLASSES,
    NOTICEABLE_PIXELS,
    SEEN_SHAPES,
    SHAPES,
    Scene,
    SceneObject,
    render_scene,
    sample_object,
)

SPECIAL_TOKENS = ("<|startoftext|>", "<|endoftext|>")
BUILD_FILE = "tiny_clip_build.json"
RECIPE_VERSION = 2
"""Part of a build's key: raised when the build changes in a way the spec does not show (2: the
tokenizer's ids in a fixed order), so an older build is rebuilt."""
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
TEXTURE_PHRASES = {
    "striped": ("striped", "with stripes"),
    "dotted": ("dotted", "with dots"),
    "checkered": ("checkered", "with a checkered pattern"),
}
ATTRIBUTE_MENTION = 0.25
SINGLE_OBJECT = 0.75
CLOSE_UP = 0.3
"""Share of pairs showing one large object filling most of the frame: shape identity is learnt
from outlines a ViT patch can resolve, and crops of small objects look like these."""
CLOSE_UP_RADIUS = (0.25, 0.42)
CAPTIONS = (
    "a photo of {objects}.",
    "this is a photo of {objects}",
    "there is {objects} in the scene",
    "{objects} on a {background} background.",
    "a picture of {objects} on a plain {background} background",
    "a simple graphic with {objects}",
    "{objects}",
)


@dataclass(frozen=True)
class TinyCLIPSpec:
    """Sizes of the towers, the pair set and the training schedule. `vision` must agree with
    the demo config's `vision_tower.vision_config` (tests check it)."""

    seed: int = 1000
    num_pairs: int = 6000
    steps: int = 2000
    batch_size: int = 64
    learning_rate: float = 2e-3
    warmup_steps: int = 50
    region_loss_weight: float = 1.0
    threads: int = 1
    image_size: int = 64
    projection_dim: int = 64
    zero_shot_images: int = 100
    vision: dict = field(
        default_factory=lambda: dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=3,
            num_attention_heads=4,
            image_size=64,
            patch_size=8,
            projection_dim=64,
        )
    )
    text: dict = field(
        default_factory=lambda: dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=32,
            projection_dim=64,
        )
    )

    def __post_init__(self) -> None:
        """The towers' sizes that `CLIPModel` and the loaders read apart must agree."""
        shared = {
            ("vision", "image_size"): self.image_size,
            ("vision", "projection_dim"): self.projection_dim,
            ("text", "projection_dim"): self.projection_dim,
        }
        for (tower, key), expected in shared.items():
            given = getattr(self, tower).get(key)  # missing: transformers' default, not ours
            if given != expected:
                raise ValueError(f"TinyCLIPSpec.{tower}[{key!r}] is {given}, not {expected}")

    def key(self) -> str:
        return json.dumps({**asdict(self), "recipe": RECIPE_VERSION}, sort_keys=True)


# ----------------------------------------------------------------------------- pairs
def _object_phrase(obj: SceneObject, rng: np.random.Generator) -> str:
    """'a small red hexagon with dots': the shape always, each attribute now and then."""
    words = [word for word in (obj.size, obj.colour) if rng.random() < ATTRIBUTE_MENTION]
    suffix = ""
    if obj.texture in TEXTURE_PHRASES and rng.random() < ATTRIBUTE_MENTION:
        before, after = TEXTURE_PHRASES[obj.texture]
        if rng.random() < 0.5:
            words.insert(int(rng.integers(0, len(words) + 1)), before)
        else:
            suffix = " " + after
    words.append(obj.shape)
    article = "an" if words[0][0] in "aeiou" else "a"
    return f"{article} {' '.join(words)}{suffix}"


def _caption(phrases: list[str], background: str, rng: np.random.Generator) -> str:
    """A plain description of a pair image from its objects' phrases."""
    objects = " and ".join(phrases)
    return str(rng.choice(CAPTIONS)).format(objects=objects, background=background)


@dataclass(frozen=True)
class Pair:
    """One pretraining pair: the image, its caption, the sorted shape names the caption
    mentions (pairs with equal ones are each other's positives) and its regions: one per
    visible shape, with the pixels it covers and the caption's phrase for it."""

    image: np.ndarray
    caption: str
    shapes: str
    regions: tuple[tuple[str, np.ndarray, str], ...]


def make_pair(seed: int, index: int, image_size: int) -> Pair:
    """A close-up of one object, or one or two objects of the demo's sizes, of any shape."""
    rng = image_rng(seed, "clip_pairs", index)
    close_up = bool(rng.random() < CLOSE_UP)
    count = 1 if close_up or rng.random() < SINGLE_OBJECT else 2
    radius = CLOSE_UP_RADIUS if close_up else None
    objects = tuple(sample_object(rng, SHAPES, image_size, radius) for _ in range(count))
    scene = Scene(background=str(rng.choice(list(BACKGROUNDS))), objects=objects)
    image, labels, _ = render_scene(scene, image_size, rng)
    phrases = [_object_phrase(obj, rng) for obj in scene.objects]
    masks = [labels == CLASSES.index(obj.shape) for obj in scene.objects]
    regions = tuple(
        (obj.shape, mask, phrase)
        for obj, mask, phrase in zip(scene.objects, masks, phrases, strict=True)
        if mask.any()
    )
    shapes = " ".join(sorted({obj.shape for obj in scene.objects}))
    return Pair(image, _caption(phrases, scene.background, rng), shapes, regions)


def to_pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 RGB (N, H, W, 3) -> CLIP-normalised float (N, 3, H, W)."""
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor(CLIP_MEAN)[:, None, None]
    std = torch.tensor(CLIP_STD)[:, None, None]
    return (pixels - mean) / std


# ------------------------------------------------------------------------- tokenizer
def tokenizer_corpus(captions: list[str], seed: int) -> list[str]:
    """The texts the tokenizer learns its words from: the pair captions, class prompts and
    LLM-style demo descriptions (so prior phrases tokenize into whole words too)."""
    from segmentation.demo.generator import DemoSpec, generate_image
    from segmentation.text.vocabulary import VILD_TEMPLATES

    prompts = [template.format(shape) for template in VILD_TEMPLATES for shape in SHAPES]
    spec = DemoSpec(seed=seed)
    descriptions = [generate_image(spec, "val", index).caption for index in range(200)]
    return [*captions, *prompts, *descriptions, "background"]


def build_tokenizer(corpus: list[str], folder: Path):
    """A CLIP BPE tokenizer (vocab.json + merges.txt) whose merges make each corpus word one
    token, its ids in a fixed order; saved in `folder` and returned as loaded by
    `AutoTokenizer`."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import AutoTokenizer, CLIPTokenizer

    bpe = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS[1], end_of_word_suffix="</w>"))
    bpe.normalizer = normalizers.Lowercase()
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    alphabet = [chr(code) for code in range(33, 127)]
    trainer = trainers.BpeTrainer(
        vocab_size=5000,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=alphabet,
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer)
    with tempfile.TemporaryDirectory() as trained:
        vocab_file, merges_file = bpe.model.save(trained)
        learnt = json.loads(Path(vocab_file).read_text())
        lines = Path(merges_file).read_text().splitlines()[1:]
    # the trainer numbers tied tokens in a different order from run to run: renumber (special
    # tokens first, then the rest sorted) so a seeded build is the same build
    ordered = [*SPECIAL_TOKENS, *sorted(set(learnt) - set(SPECIAL_TOKENS))]
    vocab = {token: index for index, token in enumerate(ordered)}
    merges = [tuple(line.split(" ")) for line in lines if line]
    folder.mkdir(parents=True, exist_ok=True)
    CLIPTokenizer(vocab=vocab, merges=merges).save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


# ----------------------------------------------------------------------------- model
def build_model(spec: TinyCLIPSpec, tokenizer):
    from transformers import CLIPConfig, CLIPModel

    ids = {
        "bos_token_id": tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS[0]),
        "eos_token_id": tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS[1]),
        "pad_token_id": tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS[1]),
    }
    text_config = {**spec.text, "vocab_size": len(tokenizer), **ids}
    config = CLIPConfig(
        text_config=text_config, vision_config=spec.vision, projection_dim=spec.projection_dim
    )
    return CLIPModel(config)


def multi_positive_loss(logits_per_image: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Symmetric CLIP loss whose targets spread evenly over every positive pair: captions of
    the same shape set are true matches, not the negatives plain InfoNCE would push away."""
    targets = positives.float() / positives.sum(dim=1, keepdim=True)
    image_loss = F.cross_entropy(logits_per_image, targets)
    text_loss = F.cross_entropy(logits_per_image.T, targets.T)
    return (image_loss + text_loss) / 2


@dataclass(frozen=True)
class Regions:
    """Every pair's regions, flattened: owning pair, shape id, pooling weights over the patch
    grid (each row sums to 1) and the phrase's tokens."""

    pair: torch.Tensor
    shape: torch.Tensor
    weights: torch.Tensor
    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    @classmethod
    def of(cls, pairs: list[Pair], tokenizer, grid: int) -> Regions:
        rows = [(index, *region) for index, pair in enumerate(pairs) for region in pair.regions]
        masks = torch.from_numpy(np.stack([mask for _, _, mask, _ in rows])).float()
        weights = F.adaptive_avg_pool2d(masks[:, None], grid).flatten(1)
        tokens = tokenizer([phrase for *_, phrase in rows], padding=True, return_tensors="pt")
        return cls(
            torch.tensor([index for index, *_ in rows]),
            torch.tensor([SHAPES.index(shape) for _, shape, _, _ in rows]),
            weights / weights.sum(dim=1, keepdim=True),
            tokens["input_ids"],
            tokens["attention_mask"],
        )


def train_clip(model, tokenizer, pairs: list[Pair], spec: TinyCLIPSpec) -> None:
    """Multi-positive contrastive training with AdamW, linear warmup and cosine decay: image to
    caption, plus (with `region_loss_weight`) region to phrase, as RegionCLIP (Zhong et al.,
    CVPR 2022) aligns region features with region descriptions. A region's embedding is the
    mean of the dense (MaskCLIP value-path) embeddings under it, what the segmentation
    classifier reads; CLIP's image embedding alone leaves its patch tokens unaligned."""
    generator = torch.Generator().manual_seed(spec.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(step, spec))
    tokens = tokenizer([pair.caption for pair in pairs], padding=True, return_tensors="pt")
    pixels = to_pixels(np.stack([pair.image for pair in pairs]))
    _, set_ids = np.unique([pair.shapes for pair in pairs], return_inverse=True)
    set_ids = torch.from_numpy(set_ids)
    regions = Regions.of(pairs, tokenizer, spec.image_size // spec.vision["patch_size"])
    model.train()
    progress = tqdm(range(spec.steps), desc="tiny CLIP", unit="step")
    for _ in progress:
        batch = torch.randperm(len(pairs), generator=generator)[: spec.batch_size]
        outputs = model(
            input_ids=tokens["input_ids"][batch],
            attention_mask=tokens["attention_mask"][batch],
            pixel_values=pixels[batch],
            output_hidden_states=spec.region_loss_weight > 0,
        )
        loss = multi_positive_loss(outputs.logits_per_image, set_ids[batch, None] == set_ids[batch])
        if spec.region_loss_weight > 0:
            loss = loss + spec.region_loss_weight * _region_loss(model, outputs, batch, regions)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        progress.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()


def _region_loss(model, outputs, batch: torch.Tensor, regions: Regions) -> torch.Tensor:
    """Region-to-phrase multi-positive loss over the batch's regions (same shape = positive)."""
    from segmentation.models.clip_classifier import dense_embeddings

    slot = torch.full((int(regions.pair.max()) + 1,), -1)
    slot[batch] = torch.arange(len(batch))
    chosen = (slot[regions.pair] >= 0).nonzero().squeeze(1)
    hidden = outputs.vision_model_output.hidden_states[-2]
    dense = dense_embeddings(model.vision_model, model.visual_projection, hidden)
    pooled = torch.einsum("kn,knd->kd", regions.weights[chosen], dense[slot[regions.pair[chosen]]])
    phrases = model.get_text_features(
        input_ids=regions.input_ids[chosen], attention_mask=regions.attention_mask[chosen]
    ).pooler_output
    logits = model.logit_scale.exp() * F.normalize(pooled, dim=-1) @ F.normalize(phrases, dim=-1).T
    shapes = regions.shape[chosen]
    return multi_positive_loss(logits, shapes[:, None] == shapes)


def _lr_factor(step: int, spec: TinyCLIPSpec) -> float:
    if step < spec.warmup_steps:
        return (step + 1) / spec.warmup_steps
    progress = (step - spec.warmup_steps) / max(spec.steps - spec.warmup_steps, 1)
    return 0.5 * (1 + np.cos(np.pi * progress))


# ------------------------------------------------------------------------- zero shot
@torch.no_grad()
def zero_shot_accuracy(folder: Path, num_images: int = 100, seed: int = 0) -> dict:
    """Accuracy of shape recognition on held-out demo validation scenes (never pair images),
    seen and unseen shapes apart: `crop` classifies a crop around each object by the CLS
    embedding; `dense` mask-pools the dense (MaskCLIP) embeddings of the whole image under the
    object's true mask, as the segmentation classifier reads them."""
    from segmentation.demo.generator import DemoSpec, generate_image
    from segmentation.models.clip_classifier import CLIPDenseEmbedder
    from segmentation.models.clip_vision import CLIPVisionTower
    from segmentation.text.encoders import CLIPTextTower
    from segmentation.text.vocabulary import embed_vocabulary, normalize_vocabulary

    config = json.loads((folder / "config.json").read_text())
    tower = CLIPVisionTower(config["vision_config"], [-1], pretrained=str(folder))
    embedder = CLIPDenseEmbedder(tower.embed_dim, config["projection_dim"], str(folder))
    text = CLIPTextTower(model_path=str(folder))
    classes = embed_vocabulary(text, normalize_vocabulary(list(SHAPES))).embeddings
    spec = DemoSpec(seed=seed)
    hits = {"crop": {"seen": [], "unseen": []}, "dense": {"seen": [], "unseen": []}}
    for index in range(num_images):
        sample = generate_image(spec, "val", index)
        pixels = to_pixels(sample.image[None])
        dense = embedder(tower, tower.run(pixels))[0]
        for obj in sample.objects:
            label = SHAPES.index(obj["shape"]) + 1
            mask = torch.from_numpy(sample.labels == label)
            if obj["visible_pixels"] < NOTICEABLE_PIXELS or not mask.any():
                continue
            group = "seen" if obj["shape"] in SEEN_SHAPES else "unseen"
            crop = _crop(pixels, obj, spec.image_size)
            crop_embedding = _image_embedding(tower, embedder, crop)
            hits["crop"][group].append(int((crop_embedding @ classes.T).argmax()) == label - 1)
            weights = F.adaptive_avg_pool2d(mask[None, None].float(), dense.shape[-2:])[0, 0]
            pooled = (dense * weights).sum(dim=(1, 2))
            hits["dense"][group].append(int((pooled @ classes.T).argmax()) == label - 1)
    return {
        kind: {group: round(100 * float(np.mean(v)), 1) for group, v in groups.items()}
        for kind, groups in hits.items()
    }


def _crop(pixels: torch.Tensor, obj: dict, image_size: int) -> torch.Tensor:
    half = int(np.ceil(obj["radius"] * 1.3))
    top, left = max(int(obj["y"]) - half, 0), max(int(obj["x"]) - half, 0)
    crop = pixels[..., top : top + 2 * half, left : left + 2 * half]
    return F.interpolate(crop, size=(image_size, image_size), mode="bilinear", align_corners=False)


def _image_embedding(tower, embedder, pixels: torch.Tensor) -> torch.Tensor:
    """CLIP's image embedding: the post-layernormed CLS token through `visual_projection`."""
    pooled = tower.model(pixel_values=pixels).pooler_output
    return F.normalize(embedder.visual_projection(pooled), dim=-1)[0]


# ----------------------------------------------------------------------------- build
def tiny_clip_options(folder: str | Path) -> list[str]:
    """The `--cfg-options` that point the tiny demo config at a tiny CLIP folder."""
    keys = (
        "model.backbone.vision_tower.pretrained",
        "model.text_encoder.model_path",
        "model.clip_classifier.checkpoint",
    )
    return [f"{key}={folder}" for key in keys]


def ensure_tiny_clip(folder: str | Path, spec: TinyCLIPSpec | None = None) -> dict:
    """Build the tiny CLIP in `folder` unless a build of the same spec is there; returns the
    build record (spec, seconds, zero-shot accuracy)."""
    spec = spec or TinyCLIPSpec()
    folder = Path(folder)
    record_path = folder / BUILD_FILE
    if record_path.exists():
        record = json.loads(record_path.read_text())
        if record["spec"] == spec.key():
            return record
    started = time.monotonic()
    torch.manual_seed(spec.seed)
    pairs = [make_pair(spec.seed, index, spec.image_size) for index in range(spec.num_pairs)]
    captions = [pair.caption for pair in pairs]
    tokenizer = build_tokenizer(tokenizer_corpus(captions, spec.seed), folder)
    model = build_model(spec, tokenizer)
    with _threads(spec.threads):
        train_clip(model, tokenizer, pairs, spec)
    model.save_pretrained(folder)
    record = {
        "spec": spec.key(),
        "seconds": round(time.monotonic() - started, 1),
        "zero_shot": zero_shot_accuracy(folder, spec.zero_shot_images),
    }
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    return record


class _threads:
    """Train on a set number of torch threads (few: on shared cores tiny models run faster so)."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __enter__(self) -> None:
        self.previous = torch.get_num_threads()
        torch.set_num_threads(self.count)

    def __exit__(self, *exc) -> None:
        torch.set_num_threads(self.previous)
