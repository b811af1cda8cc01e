"""The handoff: the optimization context HALO reads, running HALO, and the report a coding agent reads."""
