"""Benchmarks of cl_pipeline, run from the repository root as modules (``python -m benchmarks.core``;
``make bench`` runs them all). Each rewrites its section of ``benchmarks/RESULTS.md``."""
