"""The HTML report: one self-contained file (no network) with the run, the baseline diff, every eval,
its trace and the trends from the history.

``model`` holds the plain records the report is built from, ``traces`` reads a trace store into them,
``trends`` draws the history as SVG, ``build`` gathers the records from a session or the history,
``html`` writes the document, ``plugin`` is the ``--agentloop-html`` writer.
"""
