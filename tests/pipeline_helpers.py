"""Helpers of the pipeline tests: a small dataset with string labels and its config."""

from pathlib import Path

import numpy as np
import pandas as pd

SMALL_CLASSES = ["cat", "dog", "emu"]


def make_small_frame(n: int = 240, seed: int = 0, flip: float = 0.1) -> pd.DataFrame:
    """A 3-class tabular dataset with string labels and ~``flip`` injected label noise."""
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=n, n_features=5, n_informative=4, n_redundant=0, n_classes=3, class_sep=2.0, random_state=seed
    )
    rng = np.random.default_rng(seed)
    given = y.copy()
    flips = rng.random(n) < flip
    given[flips] = (y[flips] + rng.integers(1, 3, flips.sum())) % 3
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    frame.insert(0, "true_label", np.asarray(SMALL_CLASSES)[y])
    frame.insert(0, "label", np.asarray(SMALL_CLASSES)[given])
    frame.insert(0, "id", [f"ex-{i:04d}" for i in range(n)])
    frame["colour"] = np.asarray(["red", "green"])[rng.integers(0, 2, n)]
    return frame


SMALL_CONFIG = """
[source]
kind = "file"
path = "{path}"

[columns]
id = "id"
label = "label"
true_label = "true_label"
numeric = ["f*"]
categorical = ["colour"]

[model]
params = {{ C = 1.0, max_iter = 200 }}
n_folds = 3
n_jobs = 1
"""


def write_small(folder: Path, frame: pd.DataFrame | None = None, name: str = "labels.csv", extra: str = "") -> Path:
    """Write a snapshot and its config into ``folder``; return the config path."""
    folder.mkdir(parents=True, exist_ok=True)
    (frame if frame is not None else make_small_frame()).to_csv(folder / name, index=False)
    config = folder / "audit.toml"
    config.write_text(SMALL_CONFIG.format(path=name) + extra)
    return config


def data_files(data_dir: Path) -> list[str]:
    """Every file under the data dir (relative paths), sorted."""
    if not data_dir.exists():
        return []
    return sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*") if p.is_file())


def write_supplied(
    folder: Path,
    n: int,
    seed: int,
    extra: str = "",
    *,
    flip: float = 0.15,
    truth_weight: float = 0.4,
    dtype: str = "float32",
) -> Path:
    """A Parquet snapshot of ``n`` rows with noisy supplied probabilities (p_cat, p_dog, p_emu) of ``dtype``
    (random, mixed with the one-hot truth by ``truth_weight``), ``flip`` flipped labels and known truth;
    its config (``extra`` appended) is returned."""
    source = make_small_frame(n=n, seed=seed, flip=flip)
    rng = np.random.default_rng(seed)
    truth = pd.get_dummies(source["true_label"]).to_numpy(float)
    probs = rng.dirichlet(np.ones(3), len(source)) * (1 - truth_weight) + truth * truth_weight
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(dtype)
    frame = source[["id", "label", "true_label"]].copy()
    for j, name in enumerate(["cat", "dog", "emu"]):
        frame[f"p_{name}"] = probs[:, j]
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / "probs.parquet")
    (folder / "audit.toml").write_text(
        '[source]\nkind = "file"\npath = "probs.parquet"\n[columns]\ntrue_label = "true_label"\n'
        'probabilities = ["p_cat", "p_dog", "p_emu"]\nclasses = ["cat", "dog", "emu"]\n' + extra
    )
    return folder / "audit.toml"
