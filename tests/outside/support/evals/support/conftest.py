"""The support suite's own assertion type: fields of the ticket the agent filed."""

from __future__ import annotations

import json

from pytest_agentloop.assertions.registry import AssertionType, CheckInput, Outcome


def _validate(value: object) -> None:
    if not isinstance(value, dict) or not value or not all(isinstance(k, str) for k in value):
        raise ValueError("expected a mapping of ticket field to its expected value, like {priority: P1}")


def _ticket_field(value: object, given: CheckInput) -> Outcome:
    assert isinstance(value, dict)
    expected = f"ticket.json has {json.dumps(value, sort_keys=True)}"
    if given.artifacts_dir is None or not (given.artifacts_dir / "ticket.json").is_file():
        return Outcome(False, expected, "the run wrote no ticket.json")
    ticket = json.loads((given.artifacts_dir / "ticket.json").read_text(encoding="utf-8"))
    wrong = {key: ticket.get(key) for key, want in value.items() if ticket.get(key) != want}
    return Outcome(not wrong, expected, f"differs: {json.dumps(wrong)}" if wrong else "every field matches")


TICKET_FIELD = AssertionType("ticket-field", _ticket_field, _validate, target="artifacts")


def pytest_agentloop_assertion_types(config):
    return [TICKET_FIELD]
