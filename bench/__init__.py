"""Benchmarks of unfold against plain numpy on the peers' workloads (``make bench``)."""
