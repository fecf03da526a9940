"""Dagster definitions only, thin: each module imports Dagster and calls :mod:`cl_pipeline.audit` and
:mod:`cl_pipeline.storage`.

- ``partitions``: the daily partitions;
- ``resources``: the configuration and the partition store, set up once per run;
- ``assets``: one asset per stage; ``checks``: the asset checks;
- ``jobs``: the audit job and its executor; ``schedules``: the nightly schedule;
- ``runs``: in-process runs for the CLI and the Dagster instance home.

:mod:`cl_pipeline.definitions` assembles them. Importing this package does not import Dagster.
"""
