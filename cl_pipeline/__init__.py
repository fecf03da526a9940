"""cl_pipeline: confident learning as an orchestrated batch pipeline.

``cl_pipeline.core`` is the pure-numpy engine. Heavier pieces are loaded
lazily so that ``import cl_pipeline.core`` pulls in neither scikit-learn nor
pandas: ``cl_pipeline.ConfidentLearner`` imports :mod:`cl_pipeline.learning`
on first access.
"""

from typing import Any

__version__ = "0.1.0"

_LAZY = {"ConfidentLearner": "cl_pipeline.learning"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cl_pipeline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
