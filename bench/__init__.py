"""Benchmarks and reliability evidence: `make bench` writes docs/benchmarks.md."""
