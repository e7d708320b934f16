"""Benchmarks: `python -m bench.run --quick|--full` (see bench/README.md)."""
