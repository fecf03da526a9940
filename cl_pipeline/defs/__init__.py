"""Dagster definitions (assets, checks, resources, jobs, schedules) and the Dagster-free stage code they call.

Importing this package does not import Dagster; :mod:`cl_pipeline.definitions` assembles the pieces.
"""
