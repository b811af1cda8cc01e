"""From feedback to evals: the feedback file, model insights and generated eval definitions."""
