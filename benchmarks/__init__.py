"""Benchmarks (`make bench`): each `bench_*.py` module has `run() -> dict` that prints its figures."""
