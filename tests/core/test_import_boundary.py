"""``cl_pipeline.core`` is pure numpy: importing it pulls in no heavy or oracle
dependency, its modules import only numpy, the standard library and each other,
and no product code anywhere imports cleanlab."""

import ast
import functools
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


@functools.cache
def _fresh_import(module: str) -> frozenset[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"import {module} failed:\n{r.stderr}"
    return frozenset(json.loads(r.stdout.strip().splitlines()[-1]))


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
    parts = list(path.relative_to(REPO).with_suffix("").parts)[:-1]  # the file's package
    yield from _imports_in_source(path.read_text(), parts, str(path))


def _imports_in_source(src: str, pkg_parts: list[str], filename: str = "<src>"):
    tree = ast.parse(src, filename=filename)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg_parts[: len(pkg_parts) - (node.level - 1)]
                if node.module:
                    yield ".".join(base + [node.module]), node.lineno
                else:
                    for a in node.names:
                        yield ".".join(base + [a.name]), node.lineno
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
    bad = [
        f"{f.relative_to(REPO)}:{line} imports {mod}"
        for f in files
        for mod, line in _imports(f)
        if mod.split(".")[0] == "cleanlab"
    ]
    assert not bad, "cleanlab is a test/benchmark oracle only:\n" + "\n".join(bad)


def test_the_scanner_sees_every_import_form():
    """The static scan detects the forms it claims to, so a pass means something."""
    src = (
        "import pandas\n"
        "from cleanlab import filter\n"
        "from . import _x\n"
        "from ..storage import y\n"
        "import importlib\n"
        "importlib.import_module('duckdb')\n"
        "def f():\n    import sklearn.base\n"
    )
    found = {m for m, _ in _imports_in_source(src, ["cl_pipeline", "core"])}
    assert {"pandas", "cleanlab", "cl_pipeline.core._x", "cl_pipeline.storage", "duckdb", "sklearn.base"} <= found
