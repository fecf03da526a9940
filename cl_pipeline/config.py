"""The audit configuration: one documented object describing a dataset and how to audit it.

A configuration is a TOML, YAML or JSON file (see ``docs/pipeline.md``) or the
same mapping given as Dagster resource config. Every field has a default, so an
empty file audits the embedded default dataset (scikit-learn's digits with
about 10% injected class-conditional noise).

Example (TOML)::

    [source]
    kind = "file"                 # file | folder | duckdb | embedded
    path = "labels.parquet"       # .parquet or .csv

    [columns]
    id = "id"
    label = "label"
    numeric = ["age", "income"]
    categorical = ["country"]
    text = ["comment"]

    [model]
    estimator = "sklearn.linear_model.LogisticRegression"
    params = { C = 0.1, max_iter = 300 }

    [checks]
    max_noise_rate = 0.2
"""

import datetime
import json
import math
import os
import re
import tomllib
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cl_pipeline import core
from cl_pipeline.names import check_scheduler_address, is_identifier

__all__ = [
    "AuditConfig",
    "AuditSection",
    "ChecksConfig",
    "ColumnsConfig",
    "ComputeConfig",
    "ConfigError",
    "ImageConfig",
    "IssuesConfig",
    "ModelConfig",
    "MonitorConfig",
    "SourceConfig",
    "dask_scheduler",
    "data_dir",
    "first_snapshot_date",
    "load_config",
    "parse_fraction",
    "parse_positive_int",
]

FILTER_METHODS = core.FILTER_METHODS
RANK_METHODS = core.SCORE_METHODS
default_rank_by = core.default_rank_by

#: Environment variables read by the pipeline (documented in docs/pipeline.md).
CONFIG_ENV = "CL_PIPELINE_CONFIG"
DATA_DIR_ENV = "CL_PIPELINE_DATA_DIR"
START_DATE_ENV = "CL_PIPELINE_START_DATE"
DASK_SCHEDULER_ENV = "CL_PIPELINE_DASK_SCHEDULER"
#: First daily partition when ``CL_PIPELINE_START_DATE`` is not set and the source has no dated snapshots.
DEFAULT_START_DATE = "2024-01-01"
#: Largest ``source.noise_rate`` of the embedded digits. ``core.generate_noise_matrix_from_trace``
#: redraws until the noise matrix is learnable, 10,000 times at most: at 0.8 a draw is learnable
#: with probability ~0.006, so a seed fails with probability < 1e-20; the chance grows steeply
#: above (measured by ``python -m benchmarks.embedded_noise_bound``; table in docs/pipeline.md).
MAX_EMBEDDED_NOISE_RATE = 0.8


class ConfigError(ValueError):
    """A configuration or input-data problem, raised before anything is trained or written."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Strict):
    """Where the labelled snapshot comes from.

    Attributes
    ----------
    kind : {"embedded", "file", "folder", "duckdb"}
        ``embedded``: scikit-learn digits with seeded injected noise (no files needed).
        ``file``: one Parquet or CSV file, the same snapshot for every date.
        ``folder``: one file per date; the date ``YYYY-MM-DD`` must appear in the file name.
        ``duckdb``: a table in a DuckDB database file (read-only).
    path : str, optional
        File, folder or DuckDB database path (required unless ``embedded``).
    pattern : str
        ``folder`` only: glob of snapshot files inside the folder (relative, no ``..``).
    table : str, optional
        ``duckdb`` only: table name (a plain SQL identifier, validated).
    date_column : str, optional
        ``duckdb`` only: if set, only rows whose ``date_column`` equals the partition date are read.
    noise_rate : float
        ``embedded`` only: fraction of labels flipped (class-conditionally), in
        ``[0, MAX_EMBEDDED_NOISE_RATE]``.
    seed : int
        ``embedded`` only: seed of the injected noise (>= 0).
    """

    kind: Literal["embedded", "file", "folder", "duckdb"] = "embedded"
    path: str | None = None
    pattern: str = "*"
    table: str | None = None
    date_column: str | None = None
    noise_rate: float = Field(
        0.1,
        ge=0.0,
        le=MAX_EMBEDDED_NOISE_RATE,
        description=f"fraction of labels flipped, at most {MAX_EMBEDDED_NOISE_RATE}: above it, a learnable "
        "noise matrix for the embedded digits is not found in 10,000 draws for every seed",
    )
    seed: int = Field(0, ge=0, description="seed of the injected noise (numpy.random.default_rng)")

    @field_validator("pattern")
    @classmethod
    def _pattern_inside_folder(cls, value: str) -> str:
        """A folder source's glob stays inside the folder: relative, no ``..``, valid ``**``."""
        parts = value.replace("\\", "/").split("/")
        if not value or PurePosixPath(value).is_absolute() or PureWindowsPath(value).anchor or ".." in parts:
            raise ValueError(
                f"source.pattern {value!r} must be a glob relative to source.path, without '..' "
                "(e.g. 'labels_*.parquet')"
            )
        if any("**" in part and part != "**" for part in parts):
            raise ValueError(f"source.pattern {value!r}: '**' can only be a whole path component")
        return value

    @model_validator(mode="after")
    def _check_kind(self) -> Self:
        if self.kind != "embedded" and not self.path:
            raise ValueError(f"source.path is required for source.kind = {self.kind!r}")
        if self.kind == "file" and Path(self.path or "").suffix.lower() not in (".parquet", ".csv"):
            raise ValueError(f"source.path {self.path!r} must end in .parquet or .csv")
        if self.kind == "duckdb":
            for name in ("table", "date_column"):
                value = getattr(self, name)
                if name == "table" and not value:
                    raise ValueError("source.table is required for source.kind = 'duckdb'")
                if value is not None and not is_identifier(value):
                    raise ValueError(f"source.{name} {value!r} is not a plain SQL identifier")
        return self


class ImageConfig(_Strict):
    """Where the picture of an example is, for the gallery of the top issues (``columns.image``).

    Give either ``pixels`` with ``shape`` (the image is stored in the row: one numeric column per
    pixel, row-major, shown in grey) or ``path`` (a column of local image file paths).

    Attributes
    ----------
    pixels : list of str
        Pixel column names or globs (``pixel_*``), expanded in the snapshot's column order.
    shape : list of int, optional
        ``[height, width]`` of the image; ``height * width`` must equal the number of pixel
        columns (checked against the stored snapshot when the gallery is drawn).
    path : str, optional
        A column of local image file paths (PNG; other formats through Pillow). URLs are not
        fetched (their panel says so); a missing or unreadable file gets a placeholder panel.
    root : str, optional
        Folder that relative paths are relative to (itself relative to the config file's
        folder). Default: the source's folder (``source.path``'s folder, or the folder itself
        for a ``folder`` source; the current directory for the embedded dataset).
    """

    pixels: list[str] = []
    shape: list[int] | None = None
    path: str | None = None
    root: str | None = None

    @field_validator("pixels", mode="before")
    @classmethod
    def _pixels_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if bool(self.pixels) == (self.path is not None):
            raise ValueError("columns.image needs either pixels (with shape) or path, not both and not neither")
        if self.pixels:
            if self.shape is None or len(self.shape) != 2 or not all(1 <= side <= 4096 for side in self.shape):
                raise ValueError(f"columns.image.shape {self.shape!r} must be [height, width], two integers in 1..4096")
            if any(not name for name in self.pixels):
                raise ValueError("columns.image.pixels has an empty name")
        elif self.shape is not None:
            raise ValueError("columns.image.shape goes with pixels, not with path (a file knows its shape)")
        if self.path is not None and not is_identifier(self.path):
            raise ValueError(f"columns.image.path {self.path!r} is not a plain column name")
        if self.root is not None and self.path is None:
            raise ValueError("columns.image.root goes with path (relative image file paths)")
        return self


class ColumnsConfig(_Strict):
    """Which columns hold what. Feature and probability lists accept glob patterns (``pixel_*``).

    Attributes
    ----------
    id, label : str
        Unique example id and the given label (integers or strings).
    classes : list, optional
        Class order; default: sorted distinct labels (numerically if all are integers).
    true_label : str, optional
        Known true labels, for evaluation only (precision/recall of the flags).
    numeric, categorical, text : list of str
        Feature columns, encoded with StandardScaler, OneHotEncoder and TfidfVectorizer.
    probabilities : list of str
        Bring-your-own out-of-sample probability columns, in class order (skips K-fold).
    probabilities_npy : str, optional
        Or a ``.npy`` file of shape (n, K) in snapshot row order; ``{date}`` is replaced
        by the partition date.
    display : list of str
        Columns shown to a reviewer next to each flagged example (``cl-pipeline review export``):
        text, an image path or URL, ...; plain identifiers (letters, digits, underscores).
    annotations : str or list of str, optional
        Several annotators per example (``cl_pipeline.audit.annotators``): a CSV/Parquet file
        path of a long table ``id, annotator, label`` (``{date}`` replaced by the partition
        date), or a list of per-annotator column names/globs of the snapshot. The ``label``
        column is then not in the snapshot: the audit stores the annotators' consensus there.
    label_kind : {"single", "multilabel"}
        ``multilabel``: the label column holds a set of classes per example (a list column or
        delimited strings); the audit runs the multi-label engine
        (``cl_pipeline.audit.multilabel_stage``; docs/pipeline.md, "Multi-label audits").
    label_delimiter : str
        ``multilabel`` only: the separator of class names in a text cell (default ``","``;
        1 to 8 characters, no brackets or quotes, not only whitespace unless a single space or tab).
    image : ImageConfig, optional
        The examples are pictures (pixel columns or image file paths): the ``label_issues``
        asset then shows a grid of the top 20 issues (:mod:`cl_pipeline.audit.issue_gallery`).
    """

    id: str = "id"
    label: str = "label"
    classes: list[str] | None = None
    true_label: str | None = None
    numeric: list[str] = []
    categorical: list[str] = []
    text: list[str] = []
    probabilities: list[str] = []
    probabilities_npy: str | None = None
    display: list[str] = []
    annotations: str | list[str] | None = None
    label_kind: Literal["single", "multilabel"] = "single"
    label_delimiter: str = ","
    image: ImageConfig | None = None

    @field_validator("display")
    @classmethod
    def _display_identifiers(cls, value: list[str]) -> list[str]:
        """Display columns are read with SQL: each must be a plain identifier, listed once."""
        bad = [name for name in value if not is_identifier(name)]
        if bad:
            raise ValueError(f"columns.display {bad[0]!r} is not a plain column name (letters, digits, underscores)")
        if len(set(value)) != len(value):
            raise ValueError(f"columns.display has duplicates: {value}")
        return value

    @field_validator("label_delimiter")
    @classmethod
    def _delimiter(cls, value: str) -> str:
        """A separator that cannot be confused with the brackets, quotes or padding of a cell."""
        bad = [c for c in value if c in "[]\"'\n\r"]
        if not 1 <= len(value) <= 8 or bad or (not value.strip() and value not in (" ", "\t")):
            raise ValueError(
                f"columns.label_delimiter {value!r} must be 1 to 8 characters without brackets, quotes or line "
                "breaks (whitespace only as a single space or tab), e.g. ',' or ';' or '|'"
            )
        return value

    @field_validator("classes", mode="before")
    @classmethod
    def _classes_as_str(cls, value: Any) -> Any:
        return None if value is None else [str(v) for v in value]

    @model_validator(mode="after")
    def _check_inputs(self) -> Self:
        has_features = bool(self.numeric or self.categorical or self.text)
        has_probs = bool(self.probabilities or self.probabilities_npy)
        if has_probs and has_features:
            raise ValueError("give either feature columns or probabilities, not both")
        if self.probabilities and self.probabilities_npy:
            raise ValueError("give either columns.probabilities or columns.probabilities_npy")
        if self.classes is not None and len(set(self.classes)) != len(self.classes):
            raise ValueError(f"columns.classes has duplicates: {self.classes}")
        self._check_annotations()
        return self

    def _check_annotations(self) -> None:
        """``annotations`` (issue 12): a file path or a non-empty column list; not with ``multilabel``."""
        if self.label_kind != "multilabel" and self.label_delimiter != ",":
            raise ValueError("columns.label_delimiter applies to columns.label_kind = 'multilabel' only")
        if self.label_kind == "multilabel" and self.annotations is not None:
            raise ValueError(
                "columns.label_kind = 'multilabel' cannot be combined with columns.annotations: several annotators "
                "are audited for single labels only; give one label set per example in columns.label (as "
                "cl-pipeline find --multilabel takes them)"
            )
        if self.annotations is None:
            return
        if isinstance(self.annotations, list) and not self.annotations:
            raise ValueError("columns.annotations is an empty list: name the annotator columns or a file")
        if isinstance(self.annotations, str) and Path(self.annotations).suffix.lower() not in (".csv", ".parquet"):
            raise ValueError(
                f"columns.annotations {self.annotations!r} must be a .csv or .parquet file (id, annotator, label)"
            )
        if self.probabilities:
            raise ValueError("columns.annotations cannot be combined with columns.probabilities; use probabilities_npy")

    @property
    def byo_probabilities(self) -> bool:
        """Whether out-of-sample probabilities are supplied (the K-fold stage is skipped)."""
        return bool(self.probabilities or self.probabilities_npy)


#: The fast, sensible default classifier and its parameters.
DEFAULT_ESTIMATOR = "sklearn.linear_model.LogisticRegression"
DEFAULT_PARAMS: dict[str, Any] = {"C": 0.1, "max_iter": 300}


class ModelConfig(_Strict):
    """The classifier for out-of-fold probabilities and retraining.

    Attributes
    ----------
    estimator : str
        Import path of a scikit-learn classifier with ``predict_proba``.
    params : dict
        Keyword arguments of the estimator. Default: ``DEFAULT_PARAMS`` for the
        default estimator, ``{}`` (the estimator's own defaults) for any other.
    n_folds : int
        Stratified folds for out-of-sample probabilities.
    random_state : int
        Seed of folds, hold-out split and estimator (if it takes ``random_state``).
    n_jobs : int
        Folds trained in parallel (threads); 1 = sequential.
    holdout_fraction : float
        Share held out to compare the retrained model with the noisy-label baseline.
    """

    estimator: str = DEFAULT_ESTIMATOR
    params: dict[str, Any] = {}
    n_folds: int = Field(5, ge=2, le=50)
    random_state: int = 0
    n_jobs: int = Field(2, ge=1)
    holdout_fraction: float = Field(0.2, gt=0.0, lt=0.9)

    @model_validator(mode="before")
    @classmethod
    def _default_params(cls, data: Any) -> Any:
        """The default parameters belong to the default estimator only."""
        if isinstance(data, dict) and "params" not in data:
            if data.get("estimator", DEFAULT_ESTIMATOR) == DEFAULT_ESTIMATOR:
                data = {**data, "params": dict(DEFAULT_PARAMS)}
        return data

    @field_validator("estimator")
    @classmethod
    def _dotted(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$", value):
            raise ValueError(f"model.estimator {value!r} is not an import path like 'pkg.module.Class'")
        return value


class IssuesConfig(_Strict):
    """How label issues are found and ranked (see ``cl_pipeline.core.find_label_issues``)."""

    filter_by: str = "prune_by_noise_rate"
    rank_by: str | None = None  # default: default_rank_by(filter_by)
    min_examples_per_class: int = Field(1, ge=0)

    @model_validator(mode="after")
    def _default_ranking(self) -> Self:
        if self.rank_by is None:
            object.__setattr__(self, "rank_by", default_rank_by(self.filter_by))
        return self

    @field_validator("filter_by")
    @classmethod
    def _filter(cls, value: str) -> str:
        if value not in FILTER_METHODS:
            raise ValueError(f"issues.filter_by {value!r} is not one of {FILTER_METHODS}")
        return value

    @field_validator("rank_by")
    @classmethod
    def _rank(cls, value: str | None) -> str | None:
        if value is not None and value not in RANK_METHODS:
            raise ValueError(f"issues.rank_by {value!r} is not one of {RANK_METHODS}")
        return value


class ChecksConfig(_Strict):
    """Thresholds of the asset checks.

    Attributes
    ----------
    max_noise_rate : float
        Blocking: estimated noise rate ``1 - trace(Q)`` must not exceed this.
    max_class_noise_rate : float
        Blocking: no class's estimated label noise may exceed this.
    retrain_tolerance : float
        Warning unless retrained hold-out accuracy >= baseline - tolerance.
    min_annotator_quality : float
        Warning when an annotator's CROWDLAB quality is below this (``columns.annotations``);
        default 0.0: off.
    """

    max_noise_rate: float = Field(0.25, ge=0.0, le=1.0)
    max_class_noise_rate: float = Field(0.5, ge=0.0, le=1.0)
    retrain_tolerance: float = Field(0.0, ge=0.0, le=1.0)
    min_annotator_quality: float = Field(0.0, ge=0.0, le=1.0)


class ComputeConfig(_Strict):
    """Where the heavy work of an audit runs.

    Attributes
    ----------
    dask_scheduler : str, optional
        ``tcp://HOST:PORT`` of a Dask scheduler: the passes, the per-row tables and the
        K folds then run on its workers, which must see the same data directory (see
        ``docs/deploy.md``). Overridden by env ``CL_PIPELINE_DASK_SCHEDULER`` and by
        ``cl-pipeline audit --dask-scheduler``. Default: this process.
    slice_rows : int
        Rows per task on the cluster (tasks are cut at row-group boundaries near this
        size; results do not depend on it). Unused without a scheduler.
    """

    dask_scheduler: str | None = None
    slice_rows: int = Field(1 << 21, ge=1)

    @field_validator("dask_scheduler")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return None if value is None else check_scheduler_address(value)


class AuditSection(_Strict):
    """What an audit starts from.

    Attributes
    ----------
    start_from : {"raw", "curated"}
        ``raw``: the snapshot as the source gives it. ``curated``: the snapshot with the
        review decisions applied (relabel, drop; see ``cl_pipeline.audit.curation``), and
        examples a reviewer kept with the same given label not flagged again. CLI:
        ``cl-pipeline audit --from curated``.
    """

    start_from: Literal["raw", "curated"] = "raw"


class MonitorConfig(_Strict):
    """Monitoring new rows against a reference audit (``cl_pipeline.audit.monitor``).

    Attributes
    ----------
    reference_date : str, optional
        ``YYYY-MM-DD`` of an audited date whose thresholds and retrained model become the
        reference; every later date is then scored against it (asset ``monitor_scores``,
        check ``noise_rate_vs_reference``). None: monitoring off.
    severity : {"warn", "error"}
        Severity of the check when the new rows are significantly noisier (``error`` makes
        ``cl-pipeline audit`` exit 3; it never blocks pruning).
    alpha : float
        Significance level of the two-proportion z-test, in (0, 0.5].
    alternative : {"greater", "two-sided"}
        ``greater``: the check fires only when the new rows are noisier; ``two-sided``: also
        when they are significantly cleaner.
    filter_by : {"confident_learning", "predicted_neq_given"}
        The row-local rule that flags a new row (the other filters rank a whole data set
        against its own joint, so they cannot score new rows against a reference).
    """

    reference_date: str | None = None
    severity: Literal["warn", "error"] = "warn"
    alpha: float = Field(0.01, gt=0.0, le=0.5)
    alternative: Literal["greater", "two-sided"] = "greater"
    filter_by: Literal["confident_learning", "predicted_neq_given"] = "confident_learning"

    @field_validator("reference_date", mode="before")
    @classmethod
    def _toml_date(cls, value: Any) -> Any:
        """A bare TOML date (``reference_date = 2024-01-02``) is read as the same ``YYYY-MM-DD``."""
        return value.isoformat() if type(value) is datetime.date else value

    @field_validator("reference_date")
    @classmethod
    def _iso_day(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            raise ValueError(f"monitor.reference_date {value!r} is not a date YYYY-MM-DD")
        try:
            datetime.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"monitor.reference_date {value!r} is not a date YYYY-MM-DD (no such day)") from None
        return value


class AuditConfig(_Strict):
    """The whole audit configuration (every section optional)."""

    source: SourceConfig = SourceConfig()
    columns: ColumnsConfig | None = None
    model: ModelConfig = ModelConfig()
    issues: IssuesConfig = IssuesConfig()
    checks: ChecksConfig = ChecksConfig()
    compute: ComputeConfig = ComputeConfig()
    audit: AuditSection = AuditSection()
    monitor: MonitorConfig = MonitorConfig()

    @model_validator(mode="after")
    def _default_columns(self) -> Self:
        if self.columns is None:
            if self.source.kind != "embedded":
                raise ValueError("a [columns] section is required unless source.kind = 'embedded'")
            from cl_pipeline.datasets import EMBEDDED_COLUMNS

            object.__setattr__(self, "columns", ColumnsConfig(**EMBEDDED_COLUMNS))
        if self.columns.annotations is not None and self.audit.start_from == "curated":
            raise ValueError("columns.annotations cannot be audited with [audit] start_from = 'curated' yet; use 'raw'")
        return self


def _read_mapping(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        return tomllib.loads(text)
    if suffix == ".json":
        return json.loads(text)
    if suffix in (".yaml", ".yml"):
        return _read_yaml(text)
    raise ConfigError(f"config file {path} must end in .toml, .yaml, .yml or .json")


def _read_yaml(text: str) -> Any:
    """``yaml.safe_load`` (no tag constructs an object); its errors as ValueError naming line and column."""
    import yaml

    try:
        loaded = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ValueError(f"YAML: {exc.problem or exc.context}{where}") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"YAML: {exc}") from exc
    return {} if loaded is None else loaded  # an empty file: every section has its default


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(
    source: str | os.PathLike[str] | dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> AuditConfig:
    """Load and validate an audit configuration.

    Parameters
    ----------
    source : path, mapping or None
        A TOML/YAML/JSON file, an already parsed mapping, or None for the embedded default.
        Relative data paths in a file are resolved against the file's folder.
    overrides : mapping, optional
        Sections merged (recursively) over ``source`` before validation.

    Returns
    -------
    AuditConfig

    Raises
    ------
    ConfigError
        The file is missing or unreadable, or a field is invalid (the message names it).
    """
    base: Path | None = None
    if source is None:
        mapping: dict[str, Any] = {}
    elif isinstance(source, dict):
        mapping = source
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            mapping = _read_mapping(path)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError, ValueError) as exc:
            raise ConfigError(f"cannot parse config file {path}: {exc}") from exc
        base = path.resolve().parent
    if not isinstance(mapping, dict):
        raise ConfigError(f"the configuration must be a mapping of sections, got {type(mapping).__name__}")
    mapping = _merge(mapping, dict(overrides or {}))
    try:
        config = AuditConfig.model_validate(mapping)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc)) from None
    return _resolve_paths(config, base) if base is not None else config


def _resolve_paths(config: AuditConfig, base: Path) -> AuditConfig:
    def resolve(value: str | None) -> str | None:
        return value if value is None or Path(value).is_absolute() else str(base / value)

    source = config.source.model_copy(update={"path": resolve(config.source.path)})
    update: dict[str, Any] = {"source": source}
    if config.columns is not None:
        npy = resolve(config.columns.probabilities_npy)
        changes: dict[str, Any] = {"probabilities_npy": npy}
        if isinstance(config.columns.annotations, str):
            changes["annotations"] = resolve(config.columns.annotations)
        if config.columns.image is not None and config.columns.image.root is not None:
            changes["image"] = config.columns.image.model_copy(update={"root": resolve(config.columns.image.root)})
        update["columns"] = config.columns.model_copy(update=changes)
    return config.model_copy(update=update)


def _format_validation_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "config"
        value = err.get("input")
        scalar = value is None or isinstance(value, str | int | float | bool)
        # pydantic's own messages do not name the value; ours ("value_error") do
        got = f", got {value!r}" if scalar and err["type"] != "value_error" else ""
        lines.append(f"{where}: {err['msg']}{got}")
    return "invalid configuration: " + "; ".join(lines)


def parse_fraction(text: str) -> float:
    """A command-line threshold (``--max-noise-rate``): a finite number in [0, 1].

    Raises
    ------
    ConfigError
        For text that is not a number, or NaN, an infinity or a number outside [0, 1].
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:  # NaN fails every comparison
        raise ConfigError(f"must be a finite number in [0, 1], got {text!r}")
    return value


def parse_positive_int(text: str) -> int:
    """A command-line count (``--top``, ``--limit``): an integer >= 1.

    Raises
    ------
    ConfigError
        For text that is not an integer, or an integer below 1.
    """
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"must be an integer >= 1, got {text!r}")
    return value


def data_dir() -> Path:
    """The pipeline's data directory: env ``CL_PIPELINE_DATA_DIR``, default ``data/``."""
    return Path(os.environ.get(DATA_DIR_ENV, "data"))


def config_file(explicit: str | None = None) -> str | None:
    """The configuration file of an audit: ``explicit``, else env ``CL_PIPELINE_CONFIG``, else None
    (the embedded default dataset)."""
    return explicit or os.environ.get(CONFIG_ENV) or None


_SNAPSHOT_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def first_snapshot_date(source: SourceConfig) -> str | None:
    """The earliest real date ``YYYY-MM-DD`` in the file names of a ``folder`` source, at most today (UTC).

    None for other sources (they have no dated snapshots), a missing folder, or no dated file.
    The file-name rule is that of :func:`cl_pipeline.storage.sources.snapshot_dates`.
    """
    if source.kind != "folder" or not source.path or not Path(source.path).is_dir():
        return None
    dates = set()
    for path in Path(source.path).glob(source.pattern):
        if (match := _SNAPSHOT_DATE.search(path.name)) is not None:
            try:
                dates.add(datetime.date.fromisoformat(match.group(0)))
            except ValueError:
                continue  # not a real day: refused by the audit of that file, no partition start
    today = datetime.datetime.now(datetime.UTC).date()
    return min(min(dates), today).isoformat() if dates else None


def start_date() -> str:
    """The first daily partition: env ``CL_PIPELINE_START_DATE``; else the first snapshot of the
    configured source (env ``CL_PIPELINE_CONFIG``; a ``folder`` source's earliest file date); else
    ``DEFAULT_START_DATE``.

    Read by the partitions definition and by ``cl-pipeline audit``'s date check, so they agree. A
    configuration that does not load gives the default (its error is reported when an audit reads it).
    """
    explicit = os.environ.get(START_DATE_ENV)
    if explicit:
        return explicit
    try:
        first = first_snapshot_date(load_config(config_file()).source)
    except (ConfigError, OSError, ValueError):
        first = None
    return first or DEFAULT_START_DATE


def dask_scheduler(config: AuditConfig, explicit: str | None = None) -> str | None:
    """The Dask scheduler of an audit: ``explicit`` (CLI, run config), else env ``CL_PIPELINE_DASK_SCHEDULER``,
    else ``[compute] dask_scheduler``; None runs the audit in this process.

    Raises
    ------
    ValueError
        The chosen address is not ``tcp://HOST:PORT`` (the message names where it came from).
    """
    if explicit:
        return check_scheduler_address(explicit, "--dask-scheduler")
    env = os.environ.get(DASK_SCHEDULER_ENV)
    if env:
        return check_scheduler_address(env, DASK_SCHEDULER_ENV)
    return config.compute.dask_scheduler
