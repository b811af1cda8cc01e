"""The LLM-rubric judge: prompt and parsing, the API client, recorded verdicts, and planning."""
