"""docs/flow.md stays true: every `minik/...` path it names exists in the tree."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# minik/<path>, ending at whitespace, a backtick or closing punctuation.
_PATH = re.compile(r"(?<![\w.])minik/[\w./-]*[\w/]")


def named_paths(text: str) -> list[str]:
    return sorted({m.group(0) for m in _PATH.finditer(text)})


def test_named_paths_are_found() -> None:
    text = "see `minik/api/tables/` and minik/apis/validation/core.py, then (`minik/daemon.py`)."
    assert named_paths(text) == ["minik/api/tables/", "minik/apis/validation/core.py", "minik/daemon.py"]


def test_every_path_in_flow_md_exists() -> None:
    paths = named_paths((ROOT / "docs" / "flow.md").read_text(encoding="utf-8"))
    assert len(paths) > 30  # the document is a map of files; an empty match would prove nothing
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing, f"docs/flow.md names paths that do not exist: {missing}"
