"""``cl_pipeline.core`` is pure numpy: importing it pulls in no heavy or oracle
dependency, its modules import only numpy, the standard library and each other,
and no product code anywhere imports cleanlab."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "cl_pipeline"
CORE = PKG / "core"
FORBIDDEN = ("dagster", "duckdb", "pandas", "pyarrow", "cleanlab", "sklearn", "scipy")


def _fresh_import(module: str) -> set[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"import {module} failed:\n{r.stderr}"
    return set(json.loads(r.stdout.strip().splitlines()[-1]))


def test_core_package_exists():
    assert (CORE / "__init__.py").is_file(), f"{CORE}/__init__.py is missing"


@pytest.mark.parametrize("forbidden", FORBIDDEN)
def test_importing_core_does_not_import(forbidden):
    mods = _fresh_import("cl_pipeline.core")
    loaded = sorted(m for m in mods if m == forbidden or m.startswith(forbidden + "."))
    assert not loaded, f"importing cl_pipeline.core imported {loaded[:5]}"
    assert "cl_pipeline.core" in mods and "numpy" in mods


def _imports(path: Path):
    """(module, lineno) for every import in a file, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    pkg_parts = list(path.relative_to(REPO).with_suffix("").parts)
    if pkg_parts[-1] == "__init__":
        pkg_parts = pkg_parts[:-1]
    else:
        pkg_parts = pkg_parts[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg_parts[: len(pkg_parts) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:
                    for a in node.names:
                        yield f"{mod}.{a.name}", node.lineno
                    continue
                yield mod, node.lineno
            else:
                yield node.module, node.lineno
        elif isinstance(node, ast.Call):
            # importlib.import_module("x") / __import__("x") with a literal name
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
            if name in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
                if isinstance(node.args[0].value, str):
                    yield node.args[0].value, node.lineno


def _core_files():
    files = sorted(CORE.rglob("*.py"))
    assert files, f"no python files under {CORE}"
    return files


def test_core_modules_import_only_numpy_stdlib_and_core():
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    bad = []
    for f in _core_files():
        for mod, line in _imports(f):
            top = mod.split(".")[0]
            if top == "numpy" or top in stdlib:
                continue
            if mod == "cl_pipeline.core" or mod.startswith("cl_pipeline.core."):
                continue
            bad.append(f"{f.relative_to(REPO)}:{line} imports {mod}")
    assert not bad, "cl_pipeline.core may import only numpy, the standard library and itself:\n" + "\n".join(bad)


def test_no_product_code_imports_cleanlab():
    files = sorted(PKG.rglob("*.py"))
    assert files
    bad = [f"{f.relative_to(REPO)}:{line} imports {mod}" for f in files for mod, line in _imports(f)
           if mod.split(".")[0] == "cleanlab"]
    assert not bad, "cleanlab is a test/benchmark oracle only:\n" + "\n".join(bad)


def test_the_scanner_sees_imports(tmp_path):
    """The static scan really detects the import forms it claims to (so a pass means something)."""
    f = REPO / "cl_pipeline" / "core" / "_scanner_probe_does_not_exist.py"
    src = "import pandas\nfrom cleanlab import filter\nfrom . import x\nimport importlib\nimportlib.import_module('duckdb')\n"
    probe = tmp_path / "probe.py"
    probe.write_text(src)
    # pretend the probe lives inside the core package
    found = set()
    tree_path = f
    orig = Path.read_text
    try:
        Path.read_text = lambda self, *a, **k: src if self == tree_path else orig(self, *a, **k)
        found = {m for m, _ in _imports(tree_path)}
    finally:
        Path.read_text = orig
    assert {"pandas", "cleanlab", "cl_pipeline.core.x", "duckdb"} <= found
