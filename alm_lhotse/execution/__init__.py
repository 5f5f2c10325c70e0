"""Execution: partitions of input, the per-entry loop, and the parallel whole-job runner."""
