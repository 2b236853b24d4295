"""The `llmformer` entry point: groups in --help, and doctor's verdict on this machine."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from flows.cli import app
from flows.cli.doctor import CheckResult, run_checks

runner = CliRunner()


def test_help_lists_every_group() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for group in ("priors", "data", "doctor"):
        assert group in result.output


def test_console_script_is_installed() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "flows.cli", "--help"], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert "priors" in completed.stdout


def test_doctor_finds_compiled_mmcv_ops_and_spacy_pipeline() -> None:
    results = {result.name: result for result in run_checks()}
    assert results["mmcv compiled ops"].ok, results["mmcv compiled ops"].detail
    assert "mmcv._ext loaded" in results["mmcv compiled ops"].detail
    assert results["spaCy pipeline"].ok
    assert results["mmsegmentation"].ok, results["mmsegmentation"].detail


def test_doctor_exits_1_and_prints_the_fix_when_a_required_check_fails(monkeypatch) -> None:
    from flows.cli import doctor as doctor_module

    broken = CheckResult("mmcv compiled ops", False, "ImportError", fix="rebuild mmcv")
    monkeypatch.setattr(doctor_module, "CHECKS", (lambda: broken,))
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1
    assert "fix: rebuild mmcv" in result.output


def test_optional_check_failure_does_not_fail_doctor(monkeypatch) -> None:
    from flows.cli import doctor as doctor_module

    no_gpu = CheckResult("cuda", False, "no GPU visible", required=False)
    monkeypatch.setattr(doctor_module, "CHECKS", (lambda: no_gpu,))
    assert runner.invoke(app, ["doctor"]).exit_code == 0


def test_a_malformed_prefect_api_url_says_so_and_does_not_fail_doctor(monkeypatch) -> None:
    from flows.cli import doctor as doctor_module

    monkeypatch.setenv("PREFECT_API_URL", "localhost:4200/api")
    result = doctor_module.check_prefect_api()
    assert (result.ok, result.required) == (False, False)
    assert result.detail == (
        "PREFECT_API_URL='localhost:4200/api' is not an http(s) URL; set it to the URL "
        "`llmformer server start` prints, e.g. http://127.0.0.1:4200/api"
    )
    monkeypatch.setattr(doctor_module, "CHECKS", (doctor_module.check_prefect_api,))
    doctor = runner.invoke(app, ["doctor"])
    assert doctor.exit_code == 0
    assert "make install" not in doctor.output
