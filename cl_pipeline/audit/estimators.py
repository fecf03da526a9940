"""The estimator a configuration names: the allow-list, and construction checked before any call.

A configuration (also editable from the Dagster UI's launchpad) names a class by
its import path. Only classes from allowed packages (``sklearn`` plus env
``CL_PIPELINE_ESTIMATOR_PACKAGES``), in public modules, that are scikit-learn
classifier classes with ``predict_proba`` are imported and instantiated; the
parameters are checked against the class's signature and scikit-learn's own
constraints before the estimator is used.
"""

import importlib
import inspect
import os
from typing import Any

from cl_pipeline.config import ConfigError, ModelConfig

__all__ = ["ESTIMATOR_PACKAGES_ENV", "build_estimator", "estimator_packages"]

#: Env var naming extra top-level packages ``model.estimator`` may come from.
ESTIMATOR_PACKAGES_ENV = "CL_PIPELINE_ESTIMATOR_PACKAGES"


def estimator_packages() -> tuple[str, ...]:
    """Top-level packages ``model.estimator`` may be imported from.

    ``sklearn`` plus the comma-separated names in env ``CL_PIPELINE_ESTIMATOR_PACKAGES``
    (e.g. ``xgboost,lightgbm,my_models``): a configuration, which the UI's launchpad
    can also edit, must not import arbitrary modules.
    """
    extra = os.environ.get(ESTIMATOR_PACKAGES_ENV, "")
    return ("sklearn", *(name.strip() for name in extra.split(",") if name.strip()))


def _estimator_class(path: str) -> type:
    """The class at the dotted ``path``, which must be a scikit-learn classifier class."""
    from sklearn.base import BaseEstimator

    module_name, _, class_name = path.rpartition(".")
    parts = path.split(".")
    allowed = estimator_packages()
    if parts[0] not in allowed:
        raise ConfigError(
            f"model.estimator {path!r}: package {parts[0]!r} is not allowed; "
            f"allowed: {list(allowed)} (add more with env CL_PIPELINE_ESTIMATOR_PACKAGES)"
        )
    # public API only: no private modules, test suites or pytest hooks are imported
    hidden = [p for p in parts[1:] if p.startswith("_") or p in ("tests", "conftest")]
    if hidden:
        raise ConfigError(f"model.estimator {path!r}: {hidden[0]!r} is not a public module or class")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except Exception as exc:  # any import-time failure of the named module is a config error
        raise ConfigError(f"model.estimator {path!r} cannot be imported: {exc}") from None
    # Checked before anything is instantiated: the config (also editable from the
    # UI launchpad) must not be able to call an arbitrary callable.
    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator)):
        raise ConfigError(f"model.estimator {path!r} is not a scikit-learn estimator class")
    if not all(hasattr(cls, method) for method in ("fit", "predict", "predict_proba")):
        raise ConfigError(f"model.estimator {path!r} has no fit/predict/predict_proba")
    return cls


def build_estimator(model: ModelConfig) -> Any:
    """Instantiate ``model.estimator`` with ``model.params`` (seeded if it takes ``random_state``).

    Raises
    ------
    ConfigError
        The class cannot be imported, is not a scikit-learn estimator class with
        ``predict_proba``, or does not take the parameters (checked against its
        signature before it is called).
    """
    cls = _estimator_class(model.estimator)
    signature = inspect.signature(cls.__init__).parameters.values()
    accepted = [p.name for p in signature if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    takes_any = any(p.kind == p.VAR_KEYWORD for p in signature)
    unknown = sorted(set(model.params) - set(accepted))
    if unknown and not takes_any:
        raise ConfigError(f"model.params {unknown} not accepted by {model.estimator} (it takes {accepted})")
    params = dict(model.params)
    if "random_state" in accepted:
        params.setdefault("random_state", model.random_state)
    try:
        estimator = cls(**params)
        if getattr(cls, "_parameter_constraints", None) is not None:  # scikit-learn's own constraints
            estimator._validate_params()
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model.params {model.params} rejected by {model.estimator}: {exc}") from None
    _check_classifier(estimator, model)
    return estimator


def _check_classifier(estimator: Any, model: ModelConfig) -> None:
    """A classifier that gives probabilities with these parameters (e.g. not ``SVC(probability=False)``)."""
    from sklearn.base import is_classifier

    if not is_classifier(estimator):
        raise ConfigError(f"model.estimator {model.estimator!r} is not a classifier")
    if not hasattr(estimator, "predict_proba"):  # scikit-learn's available_if methods
        raise ConfigError(
            f"model.estimator {model.estimator!r} with params {model.params} has no predict_proba "
            "(e.g. SVC needs probability = true)"
        )
