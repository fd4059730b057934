"""Throughput benchmarks; `make bench` (python -m benchmarks) writes benchmarks/RESULTS.md."""
