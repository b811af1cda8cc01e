"""Recorded agent runs: the on-disk trace store and span lines in the JSONL shape HALO reads."""
