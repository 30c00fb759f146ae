"""voice_ai/ is the pure domain: it never imports ray, directly or through what it imports."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import voice_ai

pytestmark = pytest.mark.unit

ROOT = Path(voice_ai.__file__).parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_module_in_voice_ai_imports_ray_or_upper_layers() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(_imports(p) & {"ray", "actors", "deployments"})
        for p in ROOT.rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_every_voice_ai_module_loads_no_ray() -> None:
    modules = [m.name for m in pkgutil.walk_packages([str(ROOT)], prefix="voice_ai.")
               if not m.name.endswith("__main__")]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "print('ray' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
