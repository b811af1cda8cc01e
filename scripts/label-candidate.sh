#!/usr/bin/env bash
# scripts/label-candidate.sh: record the authors' rubric labels for the candidate store
# (evals/diligence/traces-candidate) with `agentloop label`, which reads the default store:
# it labels a scratch copy whose `traces` is the candidate store, then merges the new lines
# into evals/diligence/verdicts.jsonl with `agentloop label`'s own writer (rerun after a re-key).
set -euo pipefail
cd "$(dirname "$0")/.."
AGENTLOOP="${AGENTLOOP:-$PWD/.venv/bin/agentloop}"
BY="pytest-agentloop example authors"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/evals"
cp -r evals/diligence "$scratch/evals/diligence"
rm -rf "$scratch/evals/diligence/traces"
mv "$scratch/evals/diligence/traces-candidate" "$scratch/evals/diligence/traces"
cp pyproject.toml "$scratch/"
(
  cd "$scratch"
  "$AGENTLOOP" label evals/diligence/concentration.eval.yaml::parent-rollup --fail --score 0.2 --by "$BY" \
    --reason "Computes the \$12.4M / 34% parent rollup but then calls concentration manageable and endorses management's legal-entity view, which the rubric fails."
  "$AGENTLOOP" label evals/diligence/soc2_precision.eval.yaml::soc2-type-precision --pass --by "$BY" \
    --reason "Keeps Type I complete and Type II in progress with no report issued, and treats the FAQ's 'SOC 2 complete' as weaker evidence."
  "$AGENTLOOP" label evals/diligence/soc2_precision.eval.yaml::security-blocks-northstar --pass --by "$BY" \
    --reason "Still ties the missing Type II report to Northstar Bank's blocked security questionnaire."
)
cp "$scratch/evals/diligence/verdicts.jsonl" evals/diligence/verdicts.jsonl
echo "labels merged into evals/diligence/verdicts.jsonl"
