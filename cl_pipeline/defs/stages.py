"""The computation of each pipeline stage, as plain functions (no Dagster, no file layout).

The Dagster assets in :mod:`cl_pipeline.defs.assets` read their inputs from
storage, call one function here and write what it returns. Everything that
decides *what* a label issue is lives in :mod:`cl_pipeline.core`; retraining is
:class:`cl_pipeline.learning.ConfidentLearner`.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cl_pipeline import core
from cl_pipeline.config import AuditConfig, ConfigError, IssuesConfig, ModelConfig
from cl_pipeline.defs.snapshot import Snapshot
from cl_pipeline.storage import atomic_write_bytes

__all__ = [
    "build_estimator",
    "calibrated_joint_tables",
    "confident_joint_table",
    "encode_features",
    "label_issues_table",
    "out_of_fold_probs",
    "rank_examples",
    "retrain",
]

log = logging.getLogger(__name__)


def estimator_packages() -> tuple[str, ...]:
    """Top-level packages ``model.estimator`` may be imported from.

    ``sklearn`` plus the comma-separated names in env ``CL_PIPELINE_ESTIMATOR_PACKAGES``
    (e.g. ``xgboost,lightgbm,my_models``): a configuration, which the UI's launchpad
    can also edit, must not import arbitrary modules.
    """
    extra = os.environ.get("CL_PIPELINE_ESTIMATOR_PACKAGES", "")
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
        raise ConfigError(
            f"model.params {unknown} not accepted by {model.estimator} (it takes {accepted})"
        )
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


def check_trainable(snapshot: Snapshot, model: ModelConfig) -> None:
    """Everything the K-fold stage needs, checked before anything is written.

    The estimator config (see :func:`build_estimator`) and each text column: its
    ``TfidfVectorizer(min_df=2)`` needs a word that appears in two or more rows.

    Raises
    ------
    ConfigError
        Naming the setting or the column.
    """
    build_estimator(model)
    for column in snapshot.features["text"]:
        if not _has_shared_word(_text(snapshot.frame[column])):
            raise ConfigError(
                f"columns.text: column {column!r} has no word that appears in two or more rows, "
                "so it gives no features; drop the column or check its content"
            ) from None


def _has_shared_word(texts: pd.Series) -> bool:
    """Whether some word (as ``TfidfVectorizer`` tokenizes) appears in two or more texts.

    Stops at the first such word, so on real text it reads a few rows, not the column.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    analyze = CountVectorizer().build_analyzer()
    seen: set[str] = set()
    for text in texts:
        words = set(analyze(text))
        if not seen.isdisjoint(words):
            return True
        seen |= words
    return False


def _text(values: pd.Series) -> pd.Series:
    """A text column as strings, missing values as "" (also for categorical columns)."""
    return values.astype(object).where(values.notna(), "").astype(str)


def _as_str(values: Any) -> Any:
    """Categorical values as strings (a picklable module-level function)."""
    return values.astype(str)


def encode_features(snapshot: Snapshot) -> tuple[Any, Any]:
    """Fit the standard scikit-learn encoders on all rows and transform them.

    Numeric columns: median imputation + ``StandardScaler``; categorical: ``OneHotEncoder``
    (unknown categories ignored); text: one ``TfidfVectorizer`` per column. The encoders
    see no labels, so fitting them on every row leaks nothing about the labels into the
    out-of-fold probabilities.

    Returns
    -------
    X : ndarray or sparse matrix
    encoder : fitted ``ColumnTransformer``
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    parts: list[tuple[str, Any, Any]] = []
    if snapshot.features["numeric"]:
        parts.append(("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                      snapshot.features["numeric"]))  # fmt: skip
    if snapshot.features["categorical"]:
        to_str = FunctionTransformer(_as_str, feature_names_out="one-to-one")
        parts.append(("categorical", make_pipeline(to_str, OneHotEncoder(handle_unknown="ignore")),
                      snapshot.features["categorical"]))  # fmt: skip
    for column in snapshot.features["text"]:
        parts.append((f"text_{column}", TfidfVectorizer(min_df=2, max_features=20000), column))
    if not parts:
        raise ConfigError("no feature columns configured (columns.numeric/categorical/text)")
    frame = snapshot.frame.copy()
    for column in snapshot.features["text"]:
        frame[column] = _text(frame[column])
    encoder = ColumnTransformer(parts, sparse_threshold=0.3)
    try:
        return encoder.fit_transform(frame), encoder
    except ValueError as exc:  # TfidfVectorizer: no word in two or more rows of a text column
        if not snapshot.features["text"] or "vocabulary" not in str(exc) and "no terms" not in str(exc):
            raise
        raise ConfigError(
            f"columns.text {snapshot.features['text']}: no word appears in two or more rows "
            f"of a text column, so it gives no features ({exc}); drop the column or add text"
        ) from None


def single_threaded_blas() -> Any:
    """Context limiting BLAS to one thread: parallelism comes from the folds.

    With OpenBLAS's own threads on top of fold threads, the small matrix products
    of a linear model spin-wait for each other: on 2 busy cores the 5 folds of the
    embedded default took 18-28 s instead of 0.7 s.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


#: Bumped when the fold computation changes, so old cached folds are not reused.
FOLD_CACHE_VERSION = 2


def fold_cache_key(data_version: str, model: ModelConfig, classes: list[str], features: dict) -> str:
    """Key of the fold cache: what the fold probabilities depend on.

    Data version, estimator and its parameters, number of folds and seed,
    classes, feature columns, and the versions of the libraries that compute
    them. Not ``n_jobs`` or ``holdout_fraction``: they do not change the folds.
    """
    settings = model.model_dump(mode="json", exclude={"n_jobs", "holdout_fraction"})
    payload = repr((FOLD_CACHE_VERSION, data_version, settings, classes, features,
                    _library_versions(model.estimator)))  # fmt: skip
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _library_versions(estimator: str) -> tuple[str, ...]:
    """Versions of numpy, scipy, scikit-learn and the estimator's own package.

    A package that is not an installed distribution (local code on the path)
    is identified by a hash of the source file of the estimator's module.
    """
    from importlib import metadata, util

    names = {"numpy", "scipy", "scikit-learn", estimator.split(".")[0]} - {"sklearn"}
    versions = []
    for name in sorted(names):
        try:
            versions.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            spec = util.find_spec(estimator.rpartition(".")[0])
            origin = Path(spec.origin) if spec is not None and spec.origin else None
            source = origin.read_bytes() if origin is not None and origin.is_file() else b""
            versions.append(f"{name}@{hashlib.sha256(source).hexdigest()[:12]}")
    return tuple(versions)


def _prune_cache(cache_dir: Path, keep: Path) -> None:
    """Remove a partition's cached folds of other keys (stale: older data, model or code)."""
    import shutil

    if cache_dir.is_dir():
        for entry in cache_dir.iterdir():
            if entry.is_dir() and entry != keep:
                shutil.rmtree(entry, ignore_errors=True)


def out_of_fold_probs(
    snapshot: Snapshot, X: Any, model: ModelConfig, cache_dir: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified K-fold out-of-sample probabilities, one cached file per finished fold.

    Folds run in parallel threads (``model.n_jobs``). Each finished fold is saved
    atomically under ``cache_dir / <key> / fold_<i>.npy``; a retry after a failure
    loads the finished folds instead of retraining them.

    Returns
    -------
    pred_probs : ndarray (n, K) float64
    fold : ndarray (n,) int64, the held-out fold of each row
    """
    from joblib import Parallel, delayed

    from cl_pipeline import learning

    k = len(snapshot.classes)
    estimator = build_estimator(model)
    folds = learning.stratified_fold_indices(snapshot.labels, model.n_folds, model.random_state)
    key_dir = Path(cache_dir) / fold_cache_key(
        snapshot.data_version, model, snapshot.classes, snapshot.features
    )
    _prune_cache(Path(cache_dir), key_dir)

    def run(i: int, train: np.ndarray, test: np.ndarray) -> np.ndarray:
        path = key_dir / f"fold_{i}.npy"
        if path.is_file():
            cached = np.load(path)
            if cached.shape == (test.size, k):
                log.info("fold %d: loaded from cache %s", i, path)
                return cached
        probs = learning.fit_predict_fold(estimator, X, snapshot.labels, train, test, k)
        atomic_write_bytes(path, lambda handle: np.save(handle, probs))
        return probs

    jobs = (delayed(run)(i, train, test) for i, (train, test) in enumerate(folds))
    with single_threaded_blas():
        results = Parallel(n_jobs=min(model.n_jobs, len(folds)), prefer="threads")(jobs)
    pred_probs = np.empty((snapshot.labels.size, k), dtype=np.float64)
    fold = np.empty(snapshot.labels.size, dtype=np.int64)
    for i, ((_, test), probs) in enumerate(zip(folds, results, strict=True)):
        pred_probs[test], fold[test] = probs, i
    return pred_probs, fold


def _matrix_table(classes: list[str], **matrices: np.ndarray) -> pd.DataFrame:
    k = len(classes)
    given, true = np.divmod(np.arange(k * k), k)
    table = pd.DataFrame({
        "given_index": given, "given_label": np.asarray(classes, dtype=object)[given],
        "true_index": true, "true_label": np.asarray(classes, dtype=object)[true],
    })  # fmt: skip
    for name, matrix in matrices.items():
        table[name] = np.asarray(matrix).reshape(-1)
    return table


def confident_joint_table(
    labels: np.ndarray, pred_probs: np.ndarray, classes: list[str]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The confident joint (raw and calibrated counts) as a long table, with the thresholds.

    Rows are (given label, guessed true label) pairs; ``threshold`` is the confident
    threshold of the *true* class of the row.
    """
    thresholds = core.get_confident_thresholds(labels, pred_probs)
    raw = core.compute_confident_joint(labels, pred_probs, thresholds=thresholds, calibrate=False)
    calibrated = core.calibrate_confident_joint(raw, labels)
    table = _matrix_table(classes, count=raw, calibrated_count=calibrated)
    table["threshold"] = np.asarray(thresholds, dtype=np.float64)[table["true_index"]]
    info = {
        "thresholds": [float(t) for t in thresholds],
        "off_diagonal": int(raw.sum() - np.trace(raw)),
        "noise_rate": float(1.0 - np.trace(calibrated) / calibrated.sum()),
    }
    return table, info


def calibrated_joint_tables(
    labels: np.ndarray, pred_probs: np.ndarray, classes: list[str], calibrated: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Q, the priors and both noise matrices (long table) and per-class label quality.

    Returns
    -------
    joint : DataFrame
        Per (given, true) pair: ``joint`` (Q), ``noise_rate`` = P(given | true),
        ``inverse_noise_rate`` = P(true | given).
    class_quality : DataFrame
        Per class: ``n``, ``py`` (latent prior), ``label_issues``, ``inverse_label_issues``,
        ``label_noise``, ``inverse_label_noise``, ``label_quality``.
    info : dict
        ``noise_rate`` (1 - trace Q), ``Q``, ``noise_matrix`` and ``py`` as nested lists.
    """
    q = core.estimate_joint(labels, pred_probs, confident_joint=calibrated)
    py, noise, inverse = core.estimate_latent(calibrated, labels)
    joint = _matrix_table(classes, joint=q, noise_rate=noise, inverse_noise_rate=inverse.T)
    quality = core.rank_classes_by_label_quality(labels, pred_probs, confident_joint=calibrated)
    order = np.asarray(quality.classes, dtype=np.int64)
    per_class = pd.DataFrame({
        "class_index": order, "class_label": np.asarray(classes, dtype=object)[order],
        "n": np.bincount(labels, minlength=len(classes))[order], "py": np.asarray(py)[order],
        "label_issues": quality.label_issues, "inverse_label_issues": quality.inverse_label_issues,
        "label_noise": quality.label_noise, "inverse_label_noise": quality.inverse_label_noise,
        "label_quality": quality.label_quality,
    }).sort_values("class_index", ignore_index=True)  # fmt: skip
    info = {
        "noise_rate": float(1.0 - np.trace(q)),
        "Q": np.asarray(q).tolist(),
        "noise_matrix": np.asarray(noise).tolist(),
        "py": np.asarray(py).tolist(),
    }
    return joint, per_class, info


def rank_examples(
    labels: np.ndarray, pred_probs: np.ndarray, issues: IssuesConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flag label issues and rank every example (the CLI ``find`` and the pipeline share this).

    Returns
    -------
    mask : bool ndarray (n,)
        ``core.find_label_issues`` with the configured filter.
    quality : float ndarray (n,)
        ``core.get_label_quality_scores`` with ``issues.rank_by`` (lower = more suspicious).
    rank : int ndarray (n,)
        1 = most suspicious: flagged examples first in ``core.order_label_issues`` order,
        then the others by ascending quality.
    """
    mask = np.asarray(core.find_label_issues(
        labels, pred_probs, filter_by=issues.filter_by,
        min_examples_per_class=issues.min_examples_per_class,
    ), dtype=bool)  # fmt: skip
    quality = np.asarray(core.get_label_quality_scores(labels, pred_probs, method=issues.rank_by))
    # flagged first, each group by ascending quality, ties by index: the first
    # group is exactly core.order_label_issues (scores computed once here)
    flagged, rest = np.flatnonzero(mask), np.flatnonzero(~mask)
    order = np.concatenate([flagged[np.argsort(quality[flagged], kind="stable")],
                            rest[np.argsort(quality[rest], kind="stable")]])  # fmt: skip
    rank = np.empty(labels.size, dtype=np.int64)
    rank[order] = np.arange(1, labels.size + 1)
    return mask, quality, rank


def label_issues_table(
    snapshot: Snapshot, pred_probs: np.ndarray, issues: IssuesConfig
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Every example with its flag, quality score and rank (1 = most suspicious).

    Flagged examples come first, ordered by ``core.order_label_issues``; the rest
    follow by ascending label quality.
    """
    labels = snapshot.labels
    mask, quality, rank = rank_examples(labels, pred_probs, issues)
    names = np.asarray(snapshot.classes, dtype=object)
    suggested = pred_probs.argmax(axis=1)
    table = pd.DataFrame({
        "row": np.arange(labels.size), "id": snapshot.ids.to_numpy(),
        "given_label": names[labels], "suggested_label": names[suggested],
        "label_quality": quality, "is_label_issue": mask, "rank": rank,
        "given_index": labels, "suggested_index": suggested,
    })  # fmt: skip
    info: dict[str, Any] = {"num_issues": int(mask.sum()), "n": int(labels.size)}
    if snapshot.true_labels is not None:
        known = snapshot.true_labels >= 0
        table["true_label"] = np.where(known, names[np.maximum(snapshot.true_labels, 0)], None)
        errors = known & (snapshot.true_labels != labels)
        hits = int((mask & errors).sum())
        info.update(true_errors=int(errors.sum()), true_positives=hits,
                    precision=hits / max(int(mask.sum()), 1), recall=hits / max(int(errors.sum()), 1))  # fmt: skip
    return table.sort_values("rank", ignore_index=True), info


def retrain(
    snapshot: Snapshot, pred_probs: np.ndarray, config: AuditConfig
) -> tuple[Any, dict[str, Any]]:
    """Prune + reweight + refit with ``ConfidentLearner``, compared with a noisy-label baseline.

    A stratified hold-out split (``model.holdout_fraction``, seeded) is set aside;
    the learner gets the stored out-of-fold probabilities of the training rows, and
    the baseline is the same estimator fit on the same rows with their given labels.

    Returns
    -------
    artifact : dict
        ``{"model": Pipeline(encoder, learner), "classes": [...], ...}`` (picklable).
    scores : dict
        Hold-out accuracies against the given labels (and the true labels, if known).
    """
    from sklearn.base import clone
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline

    from cl_pipeline.learning import ConfidentLearner

    model = config.model
    X, encoder = encode_features(snapshot)
    rows = np.arange(snapshot.labels.size)
    train, hold = train_test_split(rows, test_size=model.holdout_fraction,
                                   stratify=snapshot.labels, random_state=model.random_state)  # fmt: skip
    train, hold = np.sort(train), np.sort(hold)
    estimator = build_estimator(model)
    learner = ConfidentLearner(estimator, cv_n_folds=model.n_folds, random_state=model.random_state,
                               n_jobs=model.n_jobs, filter_by=config.issues.filter_by)  # fmt: skip
    with single_threaded_blas():
        learner.fit(X[train], snapshot.labels[train], pred_probs=pred_probs[train])
        baseline = clone(estimator).fit(X[train], snapshot.labels[train])
    scores: dict[str, Any] = {
        "n_train": int(train.size), "n_holdout": int(hold.size),
        "n_pruned": int(learner.label_issues_["is_label_issue"].sum()),
        "baseline_accuracy": float(baseline.score(X[hold], snapshot.labels[hold])),
        "retrained_accuracy": float(learner.score(X[hold], snapshot.labels[hold])),
    }  # fmt: skip
    if snapshot.true_labels is not None and (snapshot.true_labels[hold] >= 0).all():
        truth = snapshot.true_labels[hold]
        scores["baseline_true_accuracy"] = float(baseline.score(X[hold], truth))
        scores["retrained_true_accuracy"] = float(learner.score(X[hold], truth))
    artifact = {
        "model": Pipeline([("features", encoder), ("confident_learner", learner)]),
        "classes": snapshot.classes, "data_version": snapshot.data_version, "scores": scores,
    }  # fmt: skip
    return artifact, scores
