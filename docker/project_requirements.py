"""Print this project's requirements from pyproject.toml, one per line, for `pip install -r`.

The images install torch and mmcv themselves (the GPU image at the torch version vLLM pins, mmcv
compiled against it), so they leave those names out with ``--exclude``.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalized_name(requirement: str) -> str:
    """The PEP 503 name a requirement string starts with ("Foo_Bar>=1" -> "foo-bar")."""
    match = NAME.match(requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def project_requirements(pyproject: Path, extras: list[str], exclude: list[str]) -> list[str]:
    """The dependencies (plus those of ``extras``) whose names are not in ``exclude``."""
    project = tomllib.loads(pyproject.read_text())["project"]
    optional = project.get("optional-dependencies", {})
    unknown = sorted(set(extras) - set(optional))
    if unknown:
        raise ValueError(f"unknown extra(s) {', '.join(unknown)}; known: {', '.join(optional)}")
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements.extend(optional[extra])
    excluded = {normalized_name(name) for name in exclude}
    return [line for line in requirements if normalized_name(line) not in excluded]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    parser.add_argument("--extra", action="append", default=[], help="add an extra's deps")
    parser.add_argument("--exclude", action="append", default=[], help="leave a name out")
    arguments = parser.parse_args(argv)
    try:
        lines = project_requirements(arguments.pyproject, arguments.extra, arguments.exclude)
    except (OSError, KeyError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
