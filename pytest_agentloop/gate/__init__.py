"""The regression gate: run history, baselines, gate policy and CI reports."""
