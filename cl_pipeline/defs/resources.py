"""Dagster resources: the audit configuration and the partition store, each set up once per run."""

from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from cl_pipeline.audit.compute import DaskEngine, Engine, local_engine
from cl_pipeline.config import AuditConfig, config_file, dask_scheduler, data_dir, load_config
from cl_pipeline.storage import PartitionStore

__all__ = ["AuditConfigResource", "ComputeResource", "PipelineStorage"]


class AuditConfigResource(dg.ConfigurableResource):
    """The dataset configuration (see ``cl_pipeline.config``), parsed once per run.

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
    _config: AuditConfig | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Read and validate the configuration once, when the run starts."""
        self._config = self.load()

    def load(self) -> AuditConfig:
        """Read and validate the configuration (raises ``ConfigError`` naming the bad field)."""
        return load_config(config_file(self.config_file), overrides=self.settings)

    @property
    def config(self) -> AuditConfig:
        """The configuration of this run (parsed in ``setup_for_execution``, or now if not set up)."""
        if self._config is None:
            self._config = self.load()
        return self._config


class PipelineStorage(dg.ConfigurableResource):
    """The data directory of the pipeline, handing out its :class:`~cl_pipeline.storage.PartitionStore`.

    Attributes
    ----------
    data_dir : str, optional
        Default: env ``CL_PIPELINE_DATA_DIR``, else ``data/``.
    """

    data_dir: str | None = None
    _store: PartitionStore | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Resolve the data directory once, when the run starts."""
        self._store = PartitionStore(self.root)

    @property
    def root(self) -> Path:
        """The resolved data directory."""
        return Path(self.data_dir) if self.data_dir else data_dir()

    @property
    def store(self) -> PartitionStore:
        """The partition store of this run's data directory."""
        if self._store is None:
            self._store = PartitionStore(self.root)
        return self._store


class ComputeResource(dg.ConfigurableResource):
    """Where the heavy work of the run goes: this process, or a Dask cluster (Dagster only orchestrates).

    Attributes
    ----------
    dask_scheduler : str, optional
        ``tcp://HOST:PORT``; default: env ``CL_PIPELINE_DASK_SCHEDULER``, else the dataset
        configuration's ``[compute] dask_scheduler``, else none: this process, one thread per core
        over slices of the stored tables (dask is not imported).
    """

    dask_scheduler: str | None = None
    _engine: DaskEngine | None = PrivateAttr(default=None)

    def engine(self, config: AuditConfig) -> Engine:
        """The engine of this run for ``config`` (one Dask client per run, connected on first use)."""
        address = dask_scheduler(config, self.dask_scheduler)
        if address is None:
            return local_engine()
        slice_rows = config.compute.slice_rows
        if self._engine is None or (self._engine.address, self._engine.slice_rows) != (address, slice_rows):
            self._engine = DaskEngine(address, slice_rows)
        return self._engine

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Close the Dask client of the run, if one was opened."""
        if self._engine is not None:
            self._engine.close()
            self._engine = None
