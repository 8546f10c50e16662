"""DESIGN.md's import rules, checked on the source rather than trusted.

Data flows one way: upstreams → scaling → metrics → dashboard. So ``scaling/`` (the
library) imports neither Streamlit nor APScheduler nor the packages built on it;
``collectors/`` imports no Streamlit; pages only render, reading through ``dashboard/``.
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package → top-level modules it must never import
FORBIDDEN: dict[str, frozenset[str]] = {
    "scaling": frozenset({"streamlit", "apscheduler", "collectors", "dashboard", "app_pages", "app"}),
    "collectors": frozenset({"streamlit", "dashboard", "app_pages", "app"}),
    "dashboard": frozenset({"apscheduler", "collectors", "app_pages", "app"}),
    # Pages render: queries, engines and the scheduler stay behind dashboard/.
    "app_pages": frozenset({"apscheduler", "collectors", "sqlalchemy", "app"}),
}


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def _violations(package: str) -> list[str]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for lineno, module in _imports(path):
            top = module.split(".")[0]
            if top in FORBIDDEN[package]:
                found.append(f"{path.relative_to(ROOT)}:{lineno} imports {module}")
            # scaling.metrics.queries and friends are read through dashboard.data
            if package == "app_pages" and module.startswith(("scaling.metrics", "scaling.store")):
                found.append(f"{path.relative_to(ROOT)}:{lineno} imports {module}")
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_keeps_its_import_rules(package: str) -> None:
    """No module of the package imports what DESIGN.md keeps out of it."""
    assert _violations(package) == []


def test_rule_checker_sees_a_violation(tmp_path: Path) -> None:
    """The checker itself flags a forbidden import (so the rule test can fail)."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom streamlit import cache_data\n", encoding="utf-8")
    assert [m for _, m in _imports(bad)] == ["os", "streamlit"]


def test_importing_all_of_scaling_loads_no_streamlit() -> None:
    """Importing every scaling module, in a fresh interpreter, leaves Streamlit unloaded."""
    modules = [
        info.name
        for info in pkgutil.walk_packages([str(ROOT / "scaling")], prefix="scaling.")
        if not info.name.endswith("__main__") and ".migrations." not in info.name
    ]
    assert len(modules) > 50
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in ('streamlit', 'apscheduler', 'dashboard', 'collectors') if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_no_pages_folder_beside_app() -> None:
    """A ``pages/`` folder would be run by Streamlit on a deep link before app.py's password gate."""
    assert not (ROOT / "pages").exists()
