"""Fixtures for the store tests: a fresh store, a registered prior set and a small shard."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from storage import FailureRecord, ImagePriors, ImageRecord, PriorSetSpec, PriorStore

BUCKET = "llmformer-test"
SERVER_START_S, SERVER_STOP_S = 30.0, 10.0

SPEC = PriorSetSpec(
    captioner="file",
    model="llava-hf/llava-1.5-7b-hf",
    prompt="Describe the image.",
    sampling={"temperature": 0.0, "max_tokens": 128},
    parser="llmformer-spacy-rules",
    parser_version="1",
    name="test set",
)


def red_car_priors(image_id: str) -> ImagePriors:
    """'a red car on the road': two objects, one attribute, one relation."""
    return ImagePriors(
        image_id=image_id,
        caption="A red car on the road.",
        objects=[
            {"name": "car", "span": "A red car", "count": 1},
            {"name": "road", "span": "the road", "count": 1},
        ],
        attributes=[{"object": 0, "value": "red", "kind": "color"}],
        relations=[{"subject": 0, "predicate": "on", "object": 1}],
    )


def image(image_id: str, status: str = "ok") -> ImageRecord:
    return ImageRecord(image_id, f"images/{image_id}.jpg", 640, 480, "ab" * 32, status)


def failure(image_id: str) -> FailureRecord:
    return FailureRecord(
        image_id, f"images/{image_id}.jpg", "decode", "UnidentifiedImageError", "x"
    )


@pytest.fixture
def store(tmp_path: Path) -> PriorStore:
    return PriorStore(tmp_path / "store")


@pytest.fixture
def prior_set(store: PriorStore) -> str:
    return store.register_prior_set(SPEC)


@pytest.fixture
def write_demo_shard(store: PriorStore, prior_set: str):
    """Write a shard of `ids` into dataset demo: priors for all but the last id, which fails."""

    def write(shard: str, ids: list[str], split: str = "train") -> None:
        *good, bad = ids
        store.write_shard(
            prior_set,
            "demo",
            split,
            shard,
            images=[image(i) for i in good] + [image(bad, "failed")],
            priors=[red_car_priors(i) for i in good],
            failures=[failure(bad)],
        )

    return write


@pytest.fixture
def make_priors():
    """The 'red car on the road' priors for a given image id."""
    return red_car_priors


@pytest.fixture
def spec() -> PriorSetSpec:
    return SPEC


@dataclass(frozen=True)
class S3Server:
    """A moto S3 server process listening on `endpoint`."""

    endpoint: str

    @classmethod
    @contextmanager
    def start(cls, workdir: Path) -> Iterator[S3Server]:
        """Run `moto_server` on a free loopback port until the block ends (bounded waits)."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        executable = shutil.which("moto_server", path=str(Path(sys.executable).parent))
        assert executable, "moto[server] is not installed next to this Python"
        log = (workdir / "moto.log").open("w")
        process = subprocess.Popen(
            [executable, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
        )
        server = cls(f"http://127.0.0.1:{port}")
        try:
            server._wait_until_up(process)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(SERVER_STOP_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(SERVER_STOP_S)
            log.close()

    def _wait_until_up(self, process: subprocess.Popen) -> None:
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            assert process.poll() is None, "moto_server exited at start"
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"moto_server did not answer at {self.endpoint}")

    def environment(self) -> dict[str, str]:
        """The AWS variables that point delta-rs and boto3 at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
        }

    def create_bucket(self, name: str) -> None:
        request = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        urllib.request.urlopen(request, timeout=10).close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[str]:
    """A moto S3 server on a free loopback port for the whole session, with the AWS variables
    pointing every client (delta-rs, boto3) at it; stopped at the end. Yields its bucket."""
    with (
        S3Server.start(tmp_path_factory.mktemp("moto")) as server,
        pytest.MonkeyPatch.context() as patch,
    ):
        for name, value in server.environment().items():
            patch.setenv(name, value)
        server.create_bucket(BUCKET)
        yield BUCKET


@pytest.fixture(params=["local", "s3"])
def store_root(request, tmp_path) -> str:
    """A store location that does not exist yet: a local folder, or a fresh prefix on S3."""
    if request.param == "local":
        return str(tmp_path / "store")
    bucket = request.getfixturevalue("s3_server")
    return f"s3://{bucket}/{tmp_path.name}"


@pytest.fixture
def finish():
    """Wait for a child process, killing it if it outlives `timeout_s`: its exit code and
    stderr."""

    def wait(process: subprocess.Popen, timeout_s: float) -> tuple[int, str]:
        try:
            _, stderr = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
        return process.returncode, stderr

    return wait
