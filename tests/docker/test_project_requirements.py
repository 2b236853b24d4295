"""docker/project_requirements.py: the requirement lines the images install after torch and mmcv."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "docker" / "project_requirements.py"
spec = importlib.util.spec_from_file_location("project_requirements", SCRIPT)
project_requirements_module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(project_requirements_module)
project_requirements = project_requirements_module.project_requirements

PYPROJECT = """
[project]
name = "demo"
dependencies = ["torch==2.13.0", "mmcv==2.1.0", "Py_YAML>=6 ; python_version >= '3'", "rich"]
[project.optional-dependencies]
dev = ["pytest>=8"]
vllm = ["vllm>=0.33"]
"""


@pytest.fixture
def pyproject(tmp_path: Path) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(PYPROJECT)
    return path


def test_excluded_names_are_left_out_and_the_rest_kept_verbatim(pyproject: Path) -> None:
    lines = project_requirements(pyproject, extras=[], exclude=["torch", "MMCV"])
    assert lines == ["Py_YAML>=6 ; python_version >= '3'", "rich"]


def test_names_compare_normalized_and_extras_append_in_order(pyproject: Path) -> None:
    lines = project_requirements(pyproject, extras=["vllm", "dev"], exclude=["py.yaml"])
    assert lines == ["torch==2.13.0", "mmcv==2.1.0", "rich", "vllm>=0.33", "pytest>=8"]


def test_an_unknown_extra_is_a_one_line_error(pyproject: Path) -> None:
    with pytest.raises(ValueError, match=r"^unknown extra\(s\) gpu; known: dev, vllm$"):
        project_requirements(pyproject, extras=["gpu"], exclude=[])


def test_main_prints_lines_and_exits_2_on_a_missing_file(
    pyproject: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main = project_requirements_module.main
    assert main(["--pyproject", str(pyproject), "--exclude", "torch", "--exclude", "mmcv"]) == 0
    assert capsys.readouterr().out == "Py_YAML>=6 ; python_version >= '3'\nrich\n"
    assert main(["--pyproject", str(tmp_path / "missing.toml")]) == 2
    assert capsys.readouterr().err.startswith("error: [Errno 2] No such file or directory")


def test_the_real_pyproject_without_torch_and_mmcv_still_has_mmsegmentation() -> None:
    lines = project_requirements(SCRIPT.parents[1] / "pyproject.toml", ["dev"], ["torch", "mmcv"])
    names = {line.split("=")[0].split(">")[0].split("<")[0] for line in lines}
    assert "mmsegmentation" in names and "prefect" in names
    assert not {"torch", "mmcv"} & names
