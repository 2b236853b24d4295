"""Pictures in Prefect artifacts: PNG charts embedded in Markdown as data URIs.

Prefect's UI renders a Markdown artifact's images, but a chart's file path means nothing to the
browser showing it (the file lives on the worker), so each picture travels inside the artifact.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path


def data_uri(path: Path) -> str:
    """The PNG file at `path` as a `data:` URI an <img> (or a Markdown image) can show."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def pictures_markdown(title: str, pictures: Sequence[Path]) -> str:
    """A Markdown page showing each PNG under its name and the path it was saved to."""
    lines = [f"# {title}", ""]
    for picture in pictures:
        lines += [f"**{picture.stem}**: `{picture}`", "", f"![{picture.stem}]({data_uri(picture)})"]
        lines.append("")
    return "\n".join(lines)
