"""Dagster resources: the audit configuration and the pipeline's storage."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from cl_pipeline.config import AuditConfig, data_dir, load_config
from cl_pipeline.storage import (
    STAGE_TIMINGS,
    Warehouse,
    list_partitions,
    partition_path,
    read_metadata,
    read_table,
    validate_name,
    write_table,
)

__all__ = ["AuditConfigResource", "PipelineStorage", "TABLES"]

#: Every table the pipeline writes (each is a warehouse view of the same name).
TABLES = (
    "raw_labels",
    "oof_pred_probs",
    "confident_joint",
    "calibrated_joint",
    "class_quality",
    "label_issues",
    "pruned_dataset",
    "retrained_model",
    "audit_summary",
    "check_results",
)


#: File suffixes of the artifacts stored next to the tables.
ARTIFACT_SUFFIXES = (".png", ".joblib")


class AuditConfigResource(dg.ConfigurableResource):
    """The dataset configuration (see ``cl_pipeline.config``).

    Attributes
    ----------
    config_file : str, optional
        TOML/YAML/JSON configuration file; default: env ``CL_PIPELINE_CONFIG``, else the
        embedded default dataset.
    settings : dict
        The same sections given inline as Dagster config; merged over the file.
    """

    config_file: str | None = None
    settings: dict = {}

    def load(self) -> AuditConfig:
        """The validated configuration (raises ``ConfigError`` naming the bad field)."""
        path = self.config_file or os.environ.get("CL_PIPELINE_CONFIG") or None
        return load_config(path, overrides=self.settings)


class PipelineStorage(dg.ConfigurableResource):
    """Partitioned Parquet tables, artifacts and the DuckDB warehouse under one data directory.

    Attributes
    ----------
    data_dir : str, optional
        Default: env ``CL_PIPELINE_DATA_DIR``, else ``data/``.
    """

    data_dir: str | None = None

    @property
    def root(self) -> Path:
        """The resolved data directory."""
        return Path(self.data_dir) if self.data_dir else data_dir()

    def write(
        self, table: str, partition: str, frame: pd.DataFrame,
        metadata: dict[str, Any] | None = None, key: str | None = None,
    ) -> Path:  # fmt: skip
        """Atomically replace one partition of ``table``; then bring the warehouse views up to date.

        The view step never fails the write (see ``Warehouse.reconcile``).
        """
        path = write_table(self.root, table, partition, frame, metadata, key=key)
        self.warehouse.ensure_views([table, STAGE_TIMINGS])
        return path

    def remove(self, table: str, partition: str, key: str | None = None) -> bool:
        """Delete one partition file of ``table`` (``key``: its file name, default ``partition``).

        Returns whether a file was removed. ``os.remove`` is atomic: readers see
        the partition or nothing.
        """
        path = partition_path(self.root, table, key or partition)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        self.warehouse.reconcile()  # drops the view if that was its last file
        return True

    def remove_artifact(self, kind: str, partition: str, suffix: str) -> bool:
        """Delete one partition's artifact; returns whether it existed."""
        try:
            self.artifact_path(kind, partition, suffix).unlink()
        except FileNotFoundError:
            return False
        return True

    def read(self, table: str, partition: str) -> pd.DataFrame:
        """One partition of a table."""
        return read_table(self.root, table, partition)

    def metadata(self, table: str, partition: str) -> dict[str, Any]:
        """The metadata stored with one partition of a table."""
        return read_metadata(self.root, table, partition)

    def has(self, table: str, partition: str) -> bool:
        """Whether ``table`` has a file for ``partition``."""
        return partition in list_partitions(self.root, table)

    def artifact_path(self, kind: str, partition: str, suffix: str) -> Path:
        """Where an artifact (model, picture) of one partition is stored (names validated)."""
        validate_name(kind, "artifact kind")
        if suffix not in ARTIFACT_SUFFIXES:
            raise ValueError(f"invalid artifact suffix {suffix!r}: one of {ARTIFACT_SUFFIXES}")
        return partition_path(self.root / "artifacts", kind, partition).with_suffix(suffix)

    def fold_cache(self, partition: str) -> Path:
        """Folder of the out-of-fold cache of one partition."""
        return self.root / "_cache" / "folds" / partition

    @property
    def warehouse(self) -> Warehouse:
        """The DuckDB warehouse of this data directory (managing the pipeline's tables)."""
        return Warehouse(self.root, managed=TABLES)
