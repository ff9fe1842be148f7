"""The local console in real headless Chromium, over the embedded stack running the real workflow.

Runs are real: notifications go through SQS, the ingest Lambda and the state machine to a scripted
receiver on 127.0.0.1; the page reads them back through the console's JSON API.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from notiflow.console.server import ConsoleServer
from notiflow.demo.receiver import Step
from tests.browser.conftest import XSS_ID, Runs, chromium_missing

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(chromium_missing(), reason="/usr/bin/chromium is not installed (apt-get install chromium)"),
]

WAIT_MS = 20_000


def rows(page: Any) -> Any:
    return page.locator("#execution-rows tr[data-arn]")


def node(page: Any, state: str) -> Any:
    return page.locator(f'#graph g.node[data-state="{state}"]')


def fill_of(page: Any, state: str) -> str:
    return node(page, state).locator("rect.node-box").evaluate("el => getComputedStyle(el).fill")


def test_list_shows_every_run_and_filters_by_status(page: Any, console: ConsoleServer, runs: Runs) -> None:
    # Given six finished runs: delivered, retried, failed, fixable, rejected and one with a hostile id
    # When the executions list opens
    page.goto(console.url)
    expect(rows(page)).to_have_count(len(runs.arns))

    # Then every run is listed with its run status and notification status, newest first, and settled
    failed = page.locator(f'#execution-rows tr[data-notification-id="{runs.ids["failed"]}"]')
    expect(failed.locator('[data-col="run-status"] .badge')).to_have_attribute("data-status", "FAILED")
    expect(failed.locator('[data-col="record-status"] .badge')).to_have_attribute("data-status", "FAILED")
    expect(failed.locator('[data-col="status-code"]')).to_have_text("404")
    expect(failed.locator('[data-col="error"]')).to_have_text("DeliveryPermanentError")
    retried = page.locator(f'#execution-rows tr[data-notification-id="{runs.ids["retried"]}"]')
    expect(retried.locator('[data-col="attempts"]')).to_have_text("3")
    expect(page.locator("body")).to_have_attribute("data-live", "false")

    # And the hostile notification id is shown as text, never run as markup
    hostile = page.locator('#execution-rows a[data-col="notification"]', has_text=XSS_ID)
    expect(hostile).to_have_count(1)
    assert page.locator("#execution-rows img").count() == 0
    assert page.evaluate("window.__xss") is None

    # When filtering by run status FAILED
    page.select_option("#status-filter", "FAILED")
    # Then only the failed runs remain: the delivery failures and the rejected one
    expected = {runs.ids["failed"], runs.ids["fixable"], runs.ids["rejected"]}
    expect(rows(page)).to_have_count(len(expected))
    assert set(rows(page).evaluate_all("rs => rs.map(r => r.dataset.notificationId)")) == expected

    # When filtering by notification status REJECTED
    page.select_option("#status-filter", "RECORD:REJECTED")
    # Then only the rejected notification remains, and the filter is kept in the URL
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_have_attribute("data-notification-id", runs.ids["rejected"])
    assert "status=RECORD%3AREJECTED" in page.url


def test_search_finds_runs_by_notification_id(page: Any, console: ConsoleServer, runs: Runs) -> None:
    # Given the executions list
    page.goto(console.url)
    expect(rows(page)).to_have_count(len(runs.arns))

    # When searching for part of a notification id, in another case
    page.fill("#search", "INVOICE-77")

    # Then only that notification's run is listed, and its link opens the execution page
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_have_attribute("data-notification-id", runs.ids["failed"])
    rows(page).first.locator("a").click()
    expect(page.locator("#execution-head h1")).to_have_text(runs.ids["failed"])

    # When searching for an id no run has
    page.goto(console.url + "#/?q=no-such-notification")
    # Then the table says so
    expect(page.locator("#execution-rows tr.empty")).to_contain_text("No execution matches")


def test_failed_run_graph_shows_where_it_failed(page: Any, console: ConsoleServer, runs: Runs) -> None:
    # Given a run whose endpoint answered 404 (a permanent failure)
    # When its execution page opens
    page.goto(console.execution_url(runs.arns["failed"]))

    # Then the graph colours each state by how this run went
    expect(node(page, "FailureGate")).to_have_attribute("data-outcome", "failed")
    outcomes = {
        "Validate": "succeeded",
        "Deduplicate": "succeeded",
        "IsDuplicate": "succeeded",
        "Deliver": "caught",
        "DescribeDeliveryFailure": "succeeded",
        "RecordFailure": "succeeded",
        "RecordSuccess": "not-reached",
        "DescribeRejection": "not-reached",
    }
    for state, outcome in outcomes.items():
        expect(node(page, state)).to_have_attribute("data-outcome", outcome)
    # And the colours really differ: red, orange, green and grey fills
    fills = {state: fill_of(page, state) for state in ("FailureGate", "Deliver", "Validate", "RecordSuccess")}
    assert len(set(fills.values())) == 4, fills
    expect(page.locator("#legend li")).to_have_count(7)
    # And catch edges are dashed, normal edges are not
    catch_edge = page.locator('#graph path.edge[data-source="Deliver"][data-target="DescribeDeliveryFailure"]')
    next_edge = page.locator('#graph path.edge[data-source="Validate"][data-target="Deduplicate"]')
    assert catch_edge.evaluate("el => getComputedStyle(el).strokeDasharray") not in ("none", "")
    assert next_edge.evaluate("el => getComputedStyle(el).strokeDasharray") == "none"

    # And the run, its record, the delivery result and the attempt log say why
    expect(page.locator("#run-status .badge")).to_have_attribute("data-status", "FAILED")
    expect(page.locator("#record-status .badge")).to_have_attribute("data-status", "FAILED")
    expect(page.locator("#failure-reason")).to_contain_text("404")
    expect(page.locator("#delivery-result")).to_contain_text("CLIENT_ERROR")
    expect(page.locator("#attempt-log tbody tr")).to_have_count(1)
    expect(page.locator("#redrive-button")).to_be_visible()

    # When the ExecutionFailed event is expanded in the history
    failed_event = page.locator('#event-table tr.event-row[data-type="ExecutionFailed"]')
    expect(failed_event).to_have_count(1)
    failed_event.click()
    # Then its error and cause are shown
    details = page.locator("#event-table tr.event-details")
    expect(details).to_contain_text("DeliveryPermanentError")
    expect(details).to_contain_text("404")

    # When a state is clicked in the graph
    node(page, "Deliver").click()
    # Then its visit is described with the error it caught
    expect(page.locator("#state-details")).to_contain_text("DeliveryPermanentError")


def test_redrive_button_delivers_the_fixed_notification(page: Any, console: ConsoleServer, runs: Runs) -> None:
    # Given a run that failed because its endpoint answered 410, and the endpoint now fixed
    runs.receiver.fix("/refunds", Step(200))
    page.goto(console.execution_url(runs.arns["fixable"]))
    expect(node(page, "FailureGate")).to_have_attribute("data-outcome", "failed")

    # When the operator presses Redrive
    page.click("#redrive-button")

    # Then the page follows the run by itself until it succeeds under the same execution
    expect(page.locator("#run-status .badge")).to_have_attribute("data-status", "SUCCEEDED", timeout=WAIT_MS)
    expect(page.locator("#record-status .badge")).to_have_attribute("data-status", "SUCCESS", timeout=WAIT_MS)
    expect(node(page, "RecordSuccess")).to_have_attribute("data-outcome", "succeeded")
    expect(node(page, "ResumeAfterRedrive")).to_have_attribute("data-outcome", "succeeded")
    expect(node(page, "ReopenForRedrive")).to_have_attribute("data-outcome", "succeeded")
    expect(node(page, "FailureGate")).to_have_attribute("data-outcome", "succeeded")
    expect(page.locator('#event-table tr[data-type="ExecutionRedriven"]')).to_have_count(1)
    expect(page.locator("#attempt-log tbody tr")).to_have_count(2)
    # And the Redrive button is gone, and polling has stopped
    expect(page.locator("#redrive-button")).to_have_count(0)
    expect(page.locator("body")).to_have_attribute("data-live", "false")
    assert [r.status for r in runs.receiver.requests_for("/refunds")] == [410, 200]


def test_succeeded_run_offers_no_redrive(page: Any, console: ConsoleServer, runs: Runs) -> None:
    # Given a run delivered after two 503s
    # When its execution page opens
    page.goto(console.execution_url(runs.arns["retried"]))

    # Then it is green to the end, Deliver shows it needed retries, and there is no Redrive button
    expect(page.locator("#run-status .badge")).to_have_attribute("data-status", "SUCCEEDED")
    expect(node(page, "Deliver")).to_have_attribute("data-outcome", "retried")
    expect(node(page, "RecordSuccess")).to_have_attribute("data-outcome", "succeeded")
    expect(node(page, "FailureGate")).to_have_attribute("data-outcome", "not-reached")
    expect(page.locator("#attempt-log tbody tr")).to_have_count(3)
    expect(page.locator("#refresh-button")).to_be_visible()
    assert page.locator("#redrive-button").count() == 0
