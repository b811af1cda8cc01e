"""Recorded agent runs: the on-disk store, HALO span lines, and capture."""
