"""Outputs: one writer per output format, and the registry of output streams."""
