"""The layers of the package and what each may import (docs/architecture.md).

``core`` (numpy) -> ``learning`` (scikit-learn) -> ``storage`` -> ``audit`` -> ``defs`` (Dagster) and
``cli``. ``config``, ``names`` and ``datasets`` are shared foundations. No layer imports one
above it; nothing below ``defs`` imports Dagster, and every module of ``defs`` does.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "cl_pipeline"
FOUNDATION = {"cl_pipeline", "cl_pipeline.config", "cl_pipeline.names", "cl_pipeline.datasets"}

#: Layer -> the cl_pipeline subpackages it may import (besides itself and the foundation).
ALLOWED = {
    "learning": {"core"},
    "storage": {"core"},
    "audit": {"core", "learning", "storage"},
    "defs": {"core", "learning", "storage", "audit", "definitions"},
}
#: Third-party packages a layer must never import.
FORBIDDEN = {
    "learning": {"dagster", "duckdb", "pyarrow"},
    "storage": {"dagster", "sklearn"},
    "audit": {"dagster"},
}


def _imports(path: Path) -> list[tuple[str, int]]:
    """(module, line) of every absolute import in a file (cl_pipeline uses no relative imports outside core)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno))
            found += [(f"{node.module}.{alias.name}", node.lineno) for alias in node.names]
    return found


def _layer_of(module: str) -> str | None:
    """The subpackage or module of cl_pipeline that ``module`` is in (None for other names)."""
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "cl_pipeline":
        return None
    is_module = (PKG / parts[1]).is_dir() or (PKG / f"{parts[1]}.py").is_file()
    return parts[1] if is_module else None


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_layers_below(layer: str) -> None:
    bad = []
    for path in sorted((PKG / layer).rglob("*.py")):
        for module, line in _imports(path):
            top, target = module.split(".")[0], _layer_of(module)
            if top in FORBIDDEN.get(layer, set()):
                bad.append(f"{path.relative_to(PKG)}:{line} imports {module}")
            elif target is not None and f"cl_pipeline.{target}" not in FOUNDATION:
                if target not in ALLOWED[layer] | {layer}:
                    bad.append(f"{path.relative_to(PKG)}:{line} imports {module}")
    assert not bad, f"{layer} imports above its layer:\n" + "\n".join(bad)


@pytest.mark.parametrize("package", ["core", "learning", "audit", "storage"])
def test_no_dagster_below_defs(package: str) -> None:
    """Importing the package (and everything it imports) loads no Dagster module."""
    code = f"import sys, cl_pipeline.{package}; print(any(m.split('.')[0] == 'dagster' for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"


def test_every_defs_module_uses_dagster() -> None:
    """``defs`` holds Dagster definitions only: Dagster-free code belongs in ``audit`` or ``storage``."""
    modules = [p for p in sorted((PKG / "defs").glob("*.py")) if p.name != "__init__.py"]
    assert modules
    without = [p.name for p in modules if not any(m.split(".")[0] == "dagster" for m, _ in _imports(p))]
    assert not without, f"defs modules without a Dagster import: {without}"


def test_the_scanner_sees_imports_above_a_layer(tmp_path: Path) -> None:
    """A planted upward import is found, so a pass of the layer test means something."""
    planted = tmp_path / "x.py"
    planted.write_text("from cl_pipeline.defs.assets import raw_labels\nimport dagster as dg\n")
    found = {m for m, _ in _imports(planted)}
    assert "cl_pipeline.defs.assets" in found and "dagster" in found
    assert _layer_of("cl_pipeline.defs.assets") == "defs" not in ALLOWED["audit"]
