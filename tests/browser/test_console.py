"""The local console in real headless Chromium, over the embedded stack running the real workflow.

Runs are real: notifications go through SQS, the ingest Lambda and the state machine to a scripted
receiver on 127.0.0.1; the page reads them back through the console's JSON API.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from lambdas.ingest.starter import execution_name
from notiflow.console.server import ConsoleServer
from notiflow.demo.receiver import Step
from notiflow.local.fixtures import wait_for_execution
from tests.browser.conftest import XSS_ID, Runs, chromium_missing

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(chromium_missing(), reason="/usr/bin/chromium is not installed (apt-get install chromium)"),
]

WAIT_MS = 20_000
LIST_POLL_MS = 2_000  # app.js: the list's refresh interval


def rows(page: Any) -> Any:
    return page.locator("#execution-rows tr[data-arn]")


def row_of(page: Any, notification_id: str) -> Any:
    return page.locator(f'#execution-rows tr[data-notification-id="{notification_id}"]')


def node(page: Any, state: str) -> Any:
    return page.locator(f'#graph g.node[data-state="{state}"]')


def fill_of(page: Any, state: str) -> str:
    return node(page, state).locator("rect.node-box").evaluate("el => getComputedStyle(el).fill")


def updated_at(page: Any) -> str:
    return page.locator("#last-updated").get_attribute("data-updated") or ""


def test_list_shows_every_run_and_filters_by_status(page: Any, console: ConsoleServer, runs: Runs) -> None:
    # Given six finished runs: delivered, retried, failed, fixable, rejected and one with a hostile id
    # When the executions list opens
    page.goto(console.url)
    expect(rows(page)).to_have_count(len(runs.arns))

    # Then every run is listed with its run status and notification status, newest first, and settled
    failed = row_of(page, runs.ids["failed"])
    expect(failed.locator('[data-col="run-status"] .badge')).to_have_attribute("data-status", "FAILED")
    expect(failed.locator('[data-col="record-status"] .badge')).to_have_attribute("data-status", "FAILED")
    expect(failed.locator('[data-col="status-code"]')).to_have_text("404")
    expect(failed.locator('[data-col="error"]')).to_have_text("DeliveryPermanentError")
    expect(failed.locator('[data-col="redrives"]')).to_have_text("—")
    expect(failed.locator('[data-col="started"]')).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"))
    expect(failed.locator('[data-col="ended"]')).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"))
    retried = row_of(page, runs.ids["retried"])
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
    expect(page.locator("#legend li")).to_have_count(9)
    # And a run that was never redriven has one pass, so no pass selector and no marks
    expect(page.locator("#passes")).to_have_count(0)
    expect(page.locator("#graph .node-mark")).to_have_count(0)
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


def test_redrive_asks_first_follows_the_run_and_shows_its_passes(page: Any, console: ConsoleServer, runs: Runs) -> None:
    # Given a run that failed because its endpoint answered 410, and the endpoint now fixed but slow to answer
    runs.receiver.fix("/refunds", Step(200, delay=1.5))
    page.goto(console.execution_url(runs.arns["fixable"]))
    expect(node(page, "FailureGate")).to_have_attribute("data-outcome", "failed")
    sfn = runs.stack.client("stepfunctions")

    # When the operator presses Redrive and cancels the confirmation
    page.click("#redrive-button")
    dialog = page.locator("#redrive-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("redrive 1 of the run")
    expect(dialog).to_contain_text("FailureGate")
    page.click("#redrive-cancel")
    # Then nothing is redriven
    expect(dialog).to_have_count(0)
    assert sfn.describe_execution(executionArn=runs.arns["fixable"]).get("redriveCount", 0) == 0

    # When Redrive is confirmed
    page.click("#redrive-button")
    page.click("#redrive-confirm")

    # Then the page says the redrive is running, while the run is
    status = page.locator("#redrive-status")
    expect(status).to_have_attribute("data-state", "running", timeout=WAIT_MS)
    expect(page.locator("#run-status .badge")).to_have_attribute("data-status", "RUNNING")
    expect(page.locator("#redrive-button")).to_have_count(0)
    # And the next refresh of the page does not erase it
    first = updated_at(page)
    expect(page.locator("#last-updated")).not_to_have_attribute("data-updated", first, timeout=WAIT_MS)
    expect(status).to_have_count(1)

    # And when the run ends, the page shows the result, and keeps it
    expect(status).to_have_attribute("data-state", "delivered", timeout=WAIT_MS)
    expect(status).to_contain_text("Redrive 1 delivered the notification")
    expect(page.locator("#run-status .badge")).to_have_attribute("data-status", "SUCCEEDED")
    expect(page.locator("#record-status .badge")).to_have_attribute("data-status", "SUCCESS")
    expect(page.locator("#redrive-date")).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"))
    expect(node(page, "RecordSuccess")).to_have_attribute("data-outcome", "succeeded")
    expect(node(page, "ResumeAfterRedrive")).to_have_attribute("data-outcome", "succeeded")
    expect(node(page, "ReopenForRedrive")).to_have_attribute("data-outcome", "succeeded")
    expect(node(page, "FailureGate")).to_have_attribute("data-outcome", "succeeded")
    expect(page.locator('#event-table tr[data-type="ExecutionRedriven"]')).to_have_count(1)
    expect(page.locator("#attempt-log tbody tr")).to_have_count(2)
    expect(page.locator("body")).to_have_attribute("data-live", "false")
    assert [r.status for r in runs.receiver.requests_for("/refunds")] == [410, 200]

    # And the graph shows two passes: the current one (the redrive) highlighted and green where it went
    passes = page.locator("#passes button")
    expect(passes).to_have_count(2)
    expect(passes.nth(1)).to_have_attribute("data-current", "true")
    expect(passes.nth(1)).to_have_attribute("aria-pressed", "true")
    expect(passes.nth(1)).to_contain_text("Redrive 1")
    expect(node(page, "RecordSuccess")).to_have_attribute("data-outcome", "succeeded")
    expect(node(page, "FailureGate")).to_have_attribute("data-outcome", "succeeded")
    # And the first pass's failure stays visible, and the state the redrive resumed in is marked
    expect(node(page, "FailureGate")).to_have_attribute("data-failed-in-pass", "1")
    expect(node(page, "Deliver")).to_have_attribute("data-failed-in-pass", "1")
    expect(node(page, "FailureGate")).to_have_attribute("data-redrive", "1")
    expect(node(page, "FailureGate").locator(".node-mark-failed")).to_be_visible()
    expect(node(page, "FailureGate").locator(".node-mark-redrive")).to_contain_text("redrive 1")

    # When the first pass is picked / Then the graph shows it as it went: failed in the gate, never delivered
    passes.nth(0).click()
    expect(passes.nth(0)).to_have_attribute("aria-pressed", "true")
    expect(node(page, "FailureGate")).to_have_attribute("data-outcome", "failed")
    expect(node(page, "RecordSuccess")).to_have_attribute("data-outcome", "not-reached")

    # And the list shows the redrive count and when the run ended
    page.goto(console.url)
    fixed = row_of(page, runs.ids["fixable"])
    expect(fixed.locator('[data-col="redrives"]')).to_have_text("\u00d71")
    expect(fixed.locator('[data-col="run-status"] .badge')).to_have_attribute("data-status", "SUCCEEDED")


def test_a_redrive_that_fails_again_says_so(page: Any, console: ConsoleServer, runs: Runs) -> None:
    # Given a failed run whose endpoint still answers 404
    page.goto(console.execution_url(runs.arns["failed"]))
    expect(node(page, "FailureGate")).to_have_attribute("data-outcome", "failed")

    # When it is redriven
    page.click("#redrive-button")
    page.click("#redrive-confirm")

    # Then the page follows it and says it failed again, with the reason
    status = page.locator("#redrive-status")
    expect(status).to_have_attribute("data-state", "failed-again", timeout=WAIT_MS)
    expect(status).to_contain_text("Redrive 1 failed again: DeliveryPermanentError")
    expect(status).to_contain_text("404")
    expect(page.locator("#failed-again")).to_have_text("Failed again after redrive 1")
    # And the list marks it too
    page.goto(console.url)
    expect(row_of(page, runs.ids["failed"]).locator('[data-col="redrives"]')).to_have_text("\u00d71 failed again")


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


def test_a_rejected_run_offers_the_replay_instead_of_a_redrive(page: Any, console: ConsoleServer, runs: Runs) -> None:
    # Given a rejected notification
    # When its page opens / Then no Redrive is offered, and the page says how to send a corrected one
    page.goto(console.execution_url(runs.arns["rejected"]))
    expect(page.locator("#record-status .badge")).to_have_attribute("data-status", "REJECTED")
    expect(page.locator("#redrive-reason")).to_contain_text("notiflow-replay=true")
    assert page.locator("#redrive-button").count() == 0


def test_the_express_run_of_a_notification_is_shown_with_its_standard_run(
    page: Any, console: ConsoleServer, runs: Runs
) -> None:
    # Given a delivered notification whose first attempt ran on the fast path (the record names its Express run)
    express = "arn:aws:states:us-east-1:123456789012:express:notiflow-fast-path:order-1042:0b1c"
    runs.stack.client("dynamodb").update_item(
        TableName=runs.stack.table_name,
        Key={"notificationId": {"S": runs.ids["delivered"]}},
        UpdateExpression="SET fastPathExecutionArn = :express",
        ExpressionAttributeValues={":express": {"S": express}},
    )
    # When its Standard run's page opens / Then the Express run is named beside it
    page.goto(console.execution_url(runs.arns["delivered"]))
    expect(page.locator("#express-run")).to_have_text(express)


def test_the_list_refreshes_by_itself_and_on_demand(page: Any, console: ConsoleServer, runs: Runs) -> None:
    # Given the list open with nothing running (a page that used to stop polling then), its timers under test control
    page.clock.install()
    page.goto(console.url)
    expect(rows(page)).to_have_count(len(runs.arns))
    expect(page.locator("body")).to_have_attribute("data-live", "false")
    expect(page.locator("#last-updated")).to_have_text(re.compile(r"^Updated \d\d:\d\d:\d\d$"))
    page.clock.pause_at(datetime.now() + timedelta(seconds=5))

    # When a new notification fails after the page was loaded
    runs.receiver.script("/late", [Step(403)])
    late = "late-failure-1"
    runs.stack.send_notification({"notificationId": late, "target": {"url": runs.receiver.url("/late")}, "payload": 1})
    arn = runs.stack.execution_arn(execution_name(late))
    assert wait_for_execution(runs.stack.client("stepfunctions"), arn, timeout=30)["status"] == "FAILED"
    expect(row_of(page, late)).to_have_count(0)

    # Then, once the refresh interval passes, the page reads the list again by itself and shows it
    with page.expect_request(lambda request: "/api/executions" in request.url):
        page.clock.run_for(LIST_POLL_MS)
    expect(row_of(page, late)).to_have_count(1, timeout=WAIT_MS)
    expect(row_of(page, late).locator('[data-col="run-status"] .badge')).to_have_attribute("data-status", "FAILED")

    # When Refresh is pressed (time standing still) / Then the page is read again at once
    with page.expect_request(lambda request: "/api/executions" in request.url, timeout=2_000):
        page.click("#refresh-list")
