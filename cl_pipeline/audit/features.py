"""Feature encoding of a snapshot, and the checks that it can be encoded (before anything is written).

Numeric columns: median imputation + ``StandardScaler``; categorical:
``OneHotEncoder`` (unknown categories ignored); text: one
``TfidfVectorizer(min_df=2)`` per column. The encoders see no labels.
"""

from typing import Any

import pandas as pd

from cl_pipeline.audit.estimators import build_estimator
from cl_pipeline.audit.snapshot import Snapshot
from cl_pipeline.config import ConfigError, ModelConfig

__all__ = ["check_trainable", "encode_features"]


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
        parts.append(
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), snapshot.features["numeric"])
        )
    if snapshot.features["categorical"]:
        to_str = FunctionTransformer(_as_str, feature_names_out="one-to-one")
        parts.append(
            (
                "categorical",
                make_pipeline(to_str, OneHotEncoder(handle_unknown="ignore")),
                snapshot.features["categorical"],
            )
        )
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
