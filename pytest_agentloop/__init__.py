"""pytest-agentloop: LLM-agent evals as pytest tests."""
