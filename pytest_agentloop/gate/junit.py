"""A JUnit XML document from typed results, for runs that pytest did not write one for (merged shards)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from pytest_agentloop.results import EvalResult

PROPERTIES = ("eval_id", "split", "scoring", "must_pass", "trace_id", "verdict_source", "judge_reason")


def _case(nodeid: str, outcome: str, result: EvalResult | None) -> ET.Element:
    path, _, name = nodeid.rpartition("::")
    case = ET.Element("testcase", classname=path.replace("/", ".").removesuffix(".py"), name=name or nodeid)
    if result is not None:
        case.set("time", f"{result.duration:.3f}")
        props = ET.SubElement(case, "properties")
        for key in PROPERTIES:
            value = getattr(result, key, None)
            if value is not None:
                ET.SubElement(
                    props, "property", name=key, value=str(value).lower() if isinstance(value, bool) else str(value)
                )
        ET.SubElement(props, "property", name="tags", value=",".join(result.tags))
    message = result.explanation if result is not None else outcome
    if outcome == "failed":
        ET.SubElement(case, "failure", message=message[:500]).text = message
    elif outcome == "error":
        ET.SubElement(case, "error", message=message[:500]).text = message
    elif outcome.startswith("skipped") or outcome == "judge off":
        ET.SubElement(case, "skipped", message=message[:500])
    return case


def junit_document(results: list[EvalResult], outcomes: dict[str, str]) -> str:
    """One ``testsuite`` holding every test that ran: evals with their properties, other tests by outcome."""
    by_id = {r.nodeid: r for r in results}
    names = sorted(set(outcomes) | set(by_id))
    cases = [_case(n, outcomes.get(n) or by_id[n].outcome.value, by_id.get(n)) for n in names]
    counts = {kind: sum(1 for c in cases if c.find(kind) is not None) for kind in ("failure", "error", "skipped")}
    suite = ET.Element(
        "testsuite",
        name="agentloop",
        tests=str(len(cases)),
        failures=str(counts["failure"]),
        errors=str(counts["error"]),
        skipped=str(counts["skipped"]),
    )
    suite.extend(cases)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    text: str = ET.tostring(root, encoding="unicode", xml_declaration=True)
    return text + "\n"
