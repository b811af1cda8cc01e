"""Test doubles shipped with the plugin (a fake OpenAI-compatible server)."""
