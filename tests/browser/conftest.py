"""Fixtures of the console tests: the embedded stack with a few finished runs, the console, headless Chromium.

Everything is shared by the whole folder: one stack, one receiver, one console and one browser
(no test here uses ``mock_aws``, which would reset the stack's moto backends).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from lambdas.ingest.starter import execution_name
from lambdas.shared.constants import DeliveryMode
from notiflow.console.server import ConsoleServer
from notiflow.demo.receiver import Step, WebhookReceiver
from notiflow.local.fixtures import stack_settings_for_tests, wait_for_execution
from notiflow.local.stack import EmbeddedStack
from notiflow.shared.chromium import CHROMIUM, CHROMIUM_ARGS

XSS_ID = '<img src=x onerror="window.__xss=1">'


def chromium_missing() -> bool:
    return not (CHROMIUM.exists() and shutil.which(str(CHROMIUM)))


@dataclass
class Runs:
    """The notifications sent before the tests, by role, and their execution ARNs."""

    stack: EmbeddedStack
    receiver: WebhookReceiver
    arns: dict[str, str]
    ids: dict[str, str]


SCENARIO: dict[str, tuple[str, str | None, list[Step]]] = {
    # role: (notification id, receiver path or None for a rejected target, script)
    "delivered": ("order-1042-shipped", "/orders", [Step(200)]),
    "retried": ("user-9-welcome", "/users", [Step(503), Step(503), Step(200)]),
    "failed": ("invoice-77-paid", "/invoices", [Step(404)]),
    "fixable": ("refund-31-issued", "/refunds", [Step(410)]),
    "rejected": ("report-5-ready", None, []),
    "hostile": (XSS_ID, "/hostile", [Step(200)]),
}


@pytest.fixture(scope="package")
def console_stack() -> Iterator[EmbeddedStack]:
    # Standard mode: the console's pages read one Standard run per notification (Express runs are not shown yet).
    with EmbeddedStack(stack_settings_for_tests(delivery_mode=DeliveryMode.STANDARD)) as stack:
        yield stack


@pytest.fixture(scope="package")
def runs(console_stack: EmbeddedStack) -> Iterator[Runs]:
    """Every scenario sent through SQS and finished (bounded wait)."""
    local_stack = console_stack
    with WebhookReceiver(secret=local_stack.signing_secret) as receiver:
        arns: dict[str, str] = {}
        ids: dict[str, str] = {}
        for role, (notification_id, path, steps) in SCENARIO.items():
            url = receiver.url(path) if path else "ftp://files.example.com/report"
            if path:
                receiver.script(path, steps)
            notification: dict[str, Any] = {
                "notificationId": notification_id,
                "target": {"url": url},
                "payload": {"role": role, "html": "<script>window.__xss=2</script>"},
                "eventType": f"test.{role}",
            }
            local_stack.send_notification(notification)
            ids[role] = notification_id
            arns[role] = local_stack.execution_arn(execution_name(notification_id))
        sfn = local_stack.client("stepfunctions")
        for arn in arns.values():
            wait_for_execution(sfn, arn, timeout=60)
        yield Runs(stack=local_stack, receiver=receiver, arns=arns, ids=ids)


@pytest.fixture(scope="package")
def console(runs: Runs) -> Iterator[ConsoleServer]:
    with ConsoleServer.for_stack(runs.stack) as server:
        yield server


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if chromium_missing():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), timeout=30_000)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"
