"""The import contracts in pyproject.toml ([tool.importlinter]) hold: layers, the agent never
reaching the API service or the store, controllers and the scheduler going through the client,
`minik.net` standing alone, controllers independent of each other."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _lint_imports() -> str:
    exe = shutil.which("lint-imports", path=os.path.dirname(sys.executable)) or shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports is missing: install the test extra (pip install -e '.[test]')")
    return exe


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_lint_imports(), "--no-cache", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_contracts_kept() -> None:
    res = _run()
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout


def test_a_broken_contract_fails(tmp_path: Path) -> None:
    # The daemon composes the API, so forbidding that import must be reported as broken: proves the
    # check above can fail.
    cfg = tmp_path / "contracts.toml"
    cfg.write_text('[tool.importlinter]\nroot_package = "minik"\n\n'
                   '[[tool.importlinter.contracts]]\nname = "daemon without api"\ntype = "forbidden"\n'
                   'source_modules = ["minik.daemon"]\nforbidden_modules = ["minik.api"]\n')
    res = _run("--config", str(cfg))
    assert res.returncode != 0
    assert "BROKEN" in res.stdout and "minik.daemon -> minik.api" in res.stdout


def test_agent_never_names_the_api_service_or_store() -> None:
    # Stricter than the import contract: not even a lazy import or a docstring pointing there.
    import re
    pattern = re.compile(r"minik\.(api|store)\b")
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in sorted((ROOT / "minik" / "agent").rglob("*.py"))
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert not hits, hits
