"""Runs: the AoD loop, the run folder (RunStore), starting and resuming, benchmarks, bulk generation, reports, charts, the fingerprint."""
