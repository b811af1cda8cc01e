#!/usr/bin/env bash
# The rubric labels in evals/support/verdicts.jsonl, as the authors recorded them (rerun after a
# change to an answer, a rubric or the verdict key): `agentloop label` from this folder.
set -euo pipefail
cd "$(dirname "$0")"
AGENTLOOP="${AGENTLOOP:-agentloop}"
BY="pytest-agentloop authors"
"$AGENTLOOP" label evals/support/replies.eval.yaml::damaged-item-refund --pass --by "$BY" \
  --reason "Refunds in full with no return, asks for one photo, original payment method, 5-7 business days."
"$AGENTLOOP" label evals/support/replies.eval.yaml::lost-parcel-waits-48h --pass --by "$BY" \
  --reason "Asks for 48 hours, then a carrier claim, then reship or refund; nothing promised early."
"$AGENTLOOP" label evals/support/replies.eval.yaml::takeover-escalated --pass --by "$BY" \
  --reason "Treats it as a takeover: account locked, escalated to Trust & Safety, no personal data shared."
