"""prefect.yaml: the two deployments users run, on the process pool the compose worker serves."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOYMENTS = {
    "extract-priors/default": "flows/extract.py:extract_priors",
    "train-segmenter/default": "flows/train.py:train_segmenter",
}


@pytest.fixture(scope="module")
def prefect_yaml() -> dict:
    return yaml.safe_load((REPO / "prefect.yaml").read_text())


def test_both_deployments_are_named_default_on_the_process_pool(prefect_yaml: dict) -> None:
    entries = prefect_yaml["deployments"]
    assert [(entry["name"], entry["entrypoint"]) for entry in entries] == [
        ("default", entrypoint) for entrypoint in DEPLOYMENTS.values()
    ]
    assert {entry["work_pool"]["name"] for entry in entries} == {"llmformer-process"}


def test_deployments_run_the_code_in_place(prefect_yaml: dict) -> None:
    """No pull step: `prefect deploy` records the checkout (or /opt/llmformer) as the directory."""
    assert "pull" not in prefect_yaml
    assert prefect_yaml["build"] is None and prefect_yaml["push"] is None
    assert all("pull" not in entry for entry in prefect_yaml["deployments"])


@pytest.mark.parametrize(("deployment", "entrypoint"), DEPLOYMENTS.items())
def test_each_entrypoint_loads_a_flow_named_as_users_type_it(
    deployment: str, entrypoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not (REPO / entrypoint.split(":")[0]).exists():
        pytest.skip(f"{entrypoint.split(':')[0]} is not written yet")
    from prefect.flows import load_flow_from_entrypoint

    monkeypatch.chdir(REPO)
    flow = load_flow_from_entrypoint(entrypoint, use_placeholder_flow=False)
    assert flow.name == deployment.split("/")[0]
