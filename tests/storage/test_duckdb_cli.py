"""The README's plain-DuckDB line, run as written in a shell whose PATH has the environment's
`bin` (where `make install` puts the `duckdb` shell of the duckdb-cli package)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from storage import EvalImageClass, EvalRun, ImagePriors, PriorStore

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_line() -> str:
    """The README's `duckdb` command line, without its trailing comment."""
    [line] = [line for line in README.read_text().splitlines() if "duckdb -cmd" in line]
    return line.split("  #")[0].strip()


def shell(command: str, cwd: Path) -> subprocess.CompletedProcess:
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])}
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_readme_line_reads_the_store_with_the_duckdb_shell(tmp_path, spec) -> None:
    store = PriorStore(tmp_path / "data/store")
    prior_set = store.register_prior_set(spec)
    dog = [
        {"name": "dog", "span": "a dog", "count": 1},
        {"name": "sofa", "span": "a sofa", "count": 1},
    ]
    images = [ImagePriors(f"i{n}", "A dog on a sofa.", dog) for n in range(3)]
    store.write_shard(prior_set, "demo", "val", "s0", [], images, [])
    store.write_class_names("demo", [["dog"], ["cat"]])
    run = EvalRun("r", "demo", "demo", prior_set_id=prior_set)
    store.write_eval_images(run, [EvalImageClass("i0", 0, "dog", 4, 2, 2)])

    result = shell(readme_line(), tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if "dog" in line or "sofa" in line]
    assert len(rows) == 2 and all("3" in row for row in rows), result.stdout

    views = "SELECT recall, precision, unmatched_objects FROM prior_recall"
    result = shell(f"cd data/store && duckdb -csv -cmd '.read views.sql' -c '{views}'", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["recall,precision,unmatched_objects", "1.0,1.0,1"]
