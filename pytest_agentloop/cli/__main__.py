"""``python -m pytest_agentloop.cli``."""

from pytest_agentloop.cli import main

raise SystemExit(main())
