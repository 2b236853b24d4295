"""Shipped configs build through the registry via custom_imports; ablations switch one module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config

CONFIGS = Path(__file__).parents[3] / "segmentation" / "configs"
PAPER = CONFIGS / "llmformer_vitl14_336_coco-stuff171.py"
SWITCHES = ("use_semantic_attention", "use_scaled_visual_attention", "use_relation_attention")
# the head's inputs from the priors besides the three modules, and their "off" values
PRIOR_CLASS_TERMS = {"prior_class_boost": 0.0, "name_pointer": None}
ABLATIONS = {
    "no-semantic": {"use_semantic_attention"},
    "no-scaled-visual": {"use_scaled_visual_attention"},
    "no-relation": {"use_relation_attention"},
    "baseline": {*SWITCHES, *PRIOR_CLASS_TERMS},
}

BUILD_IN_A_FRESH_INTERPRETER = """
import sys
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
cfg = Config.fromfile(sys.argv[1])  # custom_imports registers the plugin
init_default_scope(cfg.default_scope)
model = MODELS.build(cfg.model)
trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
print(type(model).__name__, type(model.decode_head).__name__, trainable > 0)
"""


def test_tiny_demo_config_builds_through_the_registry_with_custom_imports(
    untrained_tiny_clip,
) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            BUILD_IN_A_FRESH_INTERPRETER,
            str(CONFIGS / "llmformer_tiny_demo.py"),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.splitlines()[-1].split() == ["LLMFormer", "LLMFormerHead", "True"]


def test_paper_config_uses_the_san_recipe_and_mask2former_sizes() -> None:
    cfg = Config.fromfile(str(PAPER))
    head = cfg.model.decode_head
    assert (head.num_queries, head.channels, head.num_heads, head.ffn_channels) == (
        100,
        256,
        8,
        2048,
    )
    assert head.num_layers == 9
    assert head.train_cfg.num_points == 12544
    assert [cost.weight for cost in head.train_cfg.assigner.match_costs] == [2.0, 5.0, 5.0]
    assert cfg.optim_wrapper.optimizer.lr == 1e-4
    assert cfg.optim_wrapper.clip_grad.max_norm == 0.01
    assert cfg.train_cfg.max_iters == 60000
    assert cfg.default_hooks.checkpoint.by_epoch is False
    assert cfg.model.backbone.vision_tower.vision_config.patch_size == 14
    assert {hook.type for hook in cfg.custom_hooks} == {
        "VocabularyHook",
        "EvaluatorTextEncoderHook",
        "PlainCheckpointHook",
    }


@pytest.mark.parametrize(("suffix", "switched_off"), ABLATIONS.items())
def test_each_ablation_changes_only_its_switches(suffix: str, switched_off: set[str]) -> None:
    paper = Config.fromfile(str(PAPER))
    ablation = Config.fromfile(str(CONFIGS / "ablations" / f"{PAPER.stem}_{suffix}.py"))
    head = ablation.model.decode_head
    off = {name for name in SWITCHES if not head[name]}
    off |= {name for name, value in PRIOR_CLASS_TERMS.items() if head[name] == value}
    assert off == switched_off
    for name in off:
        head[name] = paper.model.decode_head[name]
    # the baseline is the paper config's first stage; the others train their prior path on it
    first_stage = suffix == "baseline"
    assert ablation.model.train_prior_path_only is not first_stage
    assert (ablation.prior_free_config is None) is first_stage
    ablation.model.train_prior_path_only = True
    assert ablation.model.to_dict() == paper.model.to_dict()
    assert ablation.train_dataloader.to_dict() == paper.train_dataloader.to_dict()


def test_the_paper_and_tiny_configs_train_their_prior_path_on_their_prior_free_stage() -> None:
    for config, stage in (
        (PAPER, CONFIGS / "ablations" / f"{PAPER.stem}_baseline.py"),
        (CONFIGS / "llmformer_tiny_demo.py", CONFIGS / "llmformer_tiny_demo_prior_free.py"),
    ):
        cfg = Config.fromfile(str(config))
        assert cfg.model.train_prior_path_only is True
        assert cfg.prior_free_config == str(stage)
        prior_free = Config.fromfile(cfg.prior_free_config)
        head = prior_free.model.decode_head
        assert not any(head[name] for name in SWITCHES)
        assert {name for name, value in PRIOR_CLASS_TERMS.items() if head[name] == value} == set(
            PRIOR_CLASS_TERMS
        )


def test_paper_config_builds_with_the_clip_classifier_on_and_params_lists_it() -> None:
    cfg = Config.fromfile(str(PAPER))
    assert cfg.model.clip_classifier.to_dict() == {
        "checkpoint": "checkpoints/clip-vit-large-patch14-336",
        "alpha": 0.4,
        "beta": 0.8,
    }
    assert cfg.model.training_classes == "coco_stuff_171"
    assert cfg.model.decode_head.prior_class_boost > 0
    assert cfg.model.decode_head.name_pointer is not None
    repo = Path(__file__).parents[3]
    completed = subprocess.run(
        [sys.executable, str(repo / "benchmarks" / "params.py"), "--configs", str(PAPER)],
        capture_output=True,
        text=True,
        check=False,
        cwd=repo,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    counts = json.loads(completed.stdout.splitlines()[-1])["full"]
    assert counts["frozen_clip_projection"] == 1024 * 768  # ViT-L width -> CLIP's 768-d space
    assert counts["trainable"] < counts["total"] - counts["frozen_clip_projection"]


def test_every_config_logs_to_tensorboard_and_one_override_swaps_it_for_mlflow() -> None:
    from segmentation.training import TrainOptions, load_training_config

    tiny = CONFIGS / "llmformer_tiny_demo.py"
    source = ["prior_store_root=data/store", "prior_set_id=x"]
    cfg = load_training_config(TrainOptions(tiny, cfg_options=source))
    backends = [backend["type"] for backend in cfg.visualizer.vis_backends]
    assert backends == ["LocalVisBackend", "TensorboardVisBackend"]
    swap = [*source, "visualizer.vis_backends.1.type=MLflowVisBackend"]
    cfg = load_training_config(TrainOptions(tiny, cfg_options=swap))
    backends = [backend["type"] for backend in cfg.visualizer.vis_backends]
    assert backends == ["LocalVisBackend", "MLflowVisBackend"]
