"""Running the user's agent: capture of runs into a trace store, the built-in runner, live runs.

Nothing here imports the Agents SDK or HALO at import time: they are the
optional extras ``[agents]`` and ``[halo]``, imported inside the functions that
need them.
"""
