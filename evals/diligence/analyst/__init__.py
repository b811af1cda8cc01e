"""The diligence analyst's tools: the bundled example as a real Agents SDK agent (see ../harness.yaml)."""
