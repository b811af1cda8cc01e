"""The HTML report in a real headless Chromium: filters, search, an eval's trace, and hostile answers that run nothing.

System tier: needs Debian's ``chromium`` (installed here with apt-get on first use when running as root) and
Playwright's Python package (a dev dependency), pointed at that executable. Screenshots are kept in
``$AGENTLOOP_TEST_ARTIFACTS`` (default: the test's tmp_path); the README's picture is ``html-report.png``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from filelock import FileLock
from test_html_report import HOSTILE, rows_of, run_with_baseline_and_failures

from pytest_agentloop.report.html import payload_of

if TYPE_CHECKING:  # Playwright is imported by the browser fixture: collecting the fast tier need not pay for it
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.system


def chromium_executable() -> str:
    """Debian's chromium, installed with apt-get on first use (as root); a clear failure otherwise."""
    found = shutil.which("chromium")
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        cache = Path(os.environ.get("AGENTLOOP_CACHE") or Path.home() / ".cache" / "pytest-agentloop")
        cache.mkdir(parents=True, exist_ok=True)
        with FileLock(cache / "chromium.lock"):  # xdist workers install it once
            found = shutil.which("chromium") or _apt_install("chromium")
    if found is None:
        pytest.fail("headless Chromium is needed: `apt-get install -y chromium` (Debian's package)", pytrace=False)
    return found


def _apt_install(package: str) -> str | None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600"]
    subprocess.run([*apt, "update", "-qq"], check=False, env=env, timeout=900)
    subprocess.run([*apt, "install", "-y", "-qq", package], check=False, env=env, timeout=900)
    return shutil.which(package)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_executable(), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots are kept."""
    folder = Path(os.environ.get("AGENTLOOP_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def open_report(browser: Browser, path: Path, problems: list[str]) -> Page:
    """The report opened from file://, with console errors and page errors collected."""
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_selector("html[data-ready='1']", timeout=10_000)
    return page


def shown_rows(page: Page) -> list[str]:
    """Node ids of the table rows on screen."""
    return page.eval_on_selector_all("#table tbody tr", "rows => rows.map(r => r.dataset.nodeid)")


def test_filters_search_trace_and_hostile_answer(
    browser: Browser, pytester: pytest.Pytester, example_copy: Path, shots: Path
) -> None:
    run_with_baseline_and_failures(pytester, example_copy, "--agentloop-handoff=out/handoff.md")
    report = pytester.path / "out" / "report.html"
    rows = rows_of(payload_of(report.read_text()))
    counts = Counter(r["outcome"] for r in rows)
    problems: list[str] = []
    page = open_report(browser, report, problems)

    assert page.text_content("#gate .verdict") == "gate (regressions): FAILED"
    assert "aurora-faq-unreliable" in str(page.text_content("#diff .regress-box"))
    assert page.is_visible("#handoff") and page.is_visible("svg.trend")
    assert "run time" in page.inner_text("#facts") and "NaN" not in page.inner_text("body")
    totals = page.eval_on_selector_all("#counts tbody tr:last-child td", "cells => cells.map(c => c.textContent)")
    assert totals == ["all", *(str(counts[o]) for o in ("failed", "error", "passed", "skipped")), str(len(rows))]
    assert len(shown_rows(page)) == len(rows)
    assert shown_rows(page)[0].endswith("::aurora-faq-unreliable") or "regressions" in str(
        page.text_content("#table tbody tr:first-child")
    )

    page.select_option("#f-outcome", "failed")
    assert len(shown_rows(page)) == counts["failed"] == 1
    page.select_option("#f-outcome", "error")
    assert len(shown_rows(page)) == counts["error"]
    page.select_option("#f-outcome", "")
    page.select_option("#f-split", "holdout")
    assert len(shown_rows(page)) == sum(r["split"] == "holdout" for r in rows)
    assert page.locator("#table tbody tr .holdout").count() == len(shown_rows(page))
    page.select_option("#f-split", "")
    page.check("#f-must")
    assert len(shown_rows(page)) == sum(r["must_pass"] for r in rows)
    page.uncheck("#f-must")
    page.select_option("#f-baseline", "regressions")
    assert set(shown_rows(page)) == {r["nodeid"] for r in rows if r["baseline_status"] == "regressions"}
    page.select_option("#f-baseline", "")
    page.click("th[data-sort='score']")
    scores = [r["score"] for r in sorted(rows, key=lambda r: 2 if r["score"] is None else r["score"])]
    assert shown_rows(page)[0] == next(r["nodeid"] for r in rows if r["score"] == scores[0])

    page.fill("#search", "aurora")
    assert [n.split("::")[1] for n in shown_rows(page)] == ["aurora-faq-unreliable"]
    page.click("#table tbody tr:first-child")
    detail = page.locator("#detail")
    assert detail.locator("h2").first.text_content() == "failed aurora-faq-unreliable"
    failed = detail.locator("tr", has=page.locator("td.a-fail"))  # the assertions table: expected and seen
    assert failed.count() == 1 and "output contains 'Aurora'" in str(failed.text_content())
    assert "no part of 'Aurora' occurs" in str(failed.text_content())
    answer = detail.locator(".answer")
    assert "<script>window.__agentloopPwned" in str(answer.text_content())
    assert "onerror=" in str(answer.text_content())
    assert answer.locator("script, img, a, iframe").count() == 0
    assert page.evaluate("typeof window.__agentloopPwned") == "undefined"
    assert detail.locator(".art", has_text="chart.png").locator("text=binary").count() == 1
    detail.locator(".art", has_text="risk_register.json").locator("button").click()
    assert "evidence" in str(detail.locator("pre.artifact-text").text_content())
    assert detail.locator("table.spans tbody tr").count() >= 1
    page.screenshot(path=str(shots / "html-report-trace.png"), full_page=True)
    assert page.evaluate("location.hash").endswith("aurora-faq-unreliable")

    page.fill("#search", "")
    page.select_option("#sort", "urgency")
    page.click("#diff .regress-box button:has-text('aurora-faq-unreliable')")
    assert page.input_value("#detail .nodeid input").endswith("::aurora-faq-unreliable")
    page.evaluate("window.scrollTo(0, document.getElementById('evals').offsetTop - 8)")
    page.screenshot(path=str(shots / "html-report.png"))
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(shots / "html-report-overview.png"))
    assert not problems, problems  # no CSP refusals, no script errors


def test_a_deep_link_opens_the_eval(browser: Browser, pytester: pytest.Pytester, example_copy: Path) -> None:
    result = pytester.runpytest("evals", "-p", "no:cacheprovider", "--agentloop-html=r.html")
    assert result.ret == 0
    nodeid = "evals/diligence/financing_risk.eval.yaml::runway-named"
    problems: list[str] = []
    page = browser.new_page()
    page.goto((pytester.path / "r.html").as_uri() + "#" + nodeid.replace("/", "%2F").replace(":", "%3A"))
    page.wait_for_selector("html[data-ready='1']")
    assert page.input_value("#detail .nodeid input") == nodeid
    assert "11 months" in str(page.text_content("#detail .answer"))
    assert HOSTILE not in str(page.content())
    assert not problems
