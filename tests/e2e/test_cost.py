"""make cost and notiflow cost end to end: the mix through the embedded stack in both modes, metered and priced.

The counts a path must produce are the README's (States each path enters): a first-try success enters
6 Standard states in standard mode and none in fast-path mode, a 404 enters 9 (fast path: 3 after the
hand-over), an exhausted schedule 33 (fast path: 28), a rejection 5 (fast path: none).
"""

from __future__ import annotations

import re
import uuid

import pytest

from infrastructure.spec import Names
from lambdas.shared.constants import STEP_DELIVER, STEP_INGEST, DeliveryMode
from notiflow.cli import main
from notiflow.cost.mix import run_mode
from notiflow.cost.model import price
from notiflow.cost.prices import load_prices
from notiflow.cost.report import render
from notiflow.demo.receiver import WebhookReceiver
from notiflow.local.fixtures import stack_settings_for_tests, wait_for_item
from notiflow.local.stack import EmbeddedStack

COUNT = 10  # 8 first-try successes, 1 answered 404, 1 never recovering, plus 2 rejected
LAST_LINE = re.compile(
    r"per million: fast-path Step Functions \$[\d,]+\.\d\d, all-in \$[\d,]+\.\d\d; "
    r"standard Step Functions \$[\d,]+\.\d\d, all-in \$[\d,]+\.\d\d"
)


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory):
    prices = load_prices()
    logs = tmp_path_factory.mktemp("cost")
    return prices, {
        mode.value: run_mode(mode, COUNT, prices, timeout=240, log_dir=logs).usage
        for mode in (DeliveryMode.STANDARD, DeliveryMode.FAST_PATH)
    }


def test_standard_mode_counts_every_state_entered_and_every_retry(measured):
    _, usages = measured
    usage = usages["standard"]
    names = Names()
    assert usage.notifications == 12
    assert usage.standard_runs == 12
    assert usage.standard_transitions == 8 * 6 + 9 + 33 + 2 * 5
    assert usage.express_requests == 0
    assert usage.sqs_requests["send_message"] == 12
    assert usage.functions[names.function(STEP_INGEST)].invocations >= 1
    # Each HTTP attempt the receiver saw is one deliver invocation: 8 + 1 + 25.
    assert usage.delivery_attempts == 34
    assert usage.functions[names.function(STEP_DELIVER)].invocations == 34
    assert usage.dynamodb_write_units > 0
    assert usage.dynamodb_read_units > 0
    assert usage.lambda_log_bytes > 0
    assert usage.standard_log_bytes > 0
    assert usage.provenance == {}


def test_fast_path_mode_runs_express_first_and_hands_over_only_failures(measured):
    _, usages = measured
    usage = usages["fast-path"]
    ingest = usage.functions[Names().function(STEP_INGEST)]
    assert usage.express_requests == 12
    assert usage.standard_runs == 2
    assert usage.standard_transitions == 3 + 28
    # Every Express run bills at least 100 ms at 64 MB.
    assert usage.express_gb_seconds >= 12 * 0.1 * 64 / 1024
    assert ingest.invocations >= 1
    assert ingest.billed_ms > 0
    levels = usage.express_log_bytes
    assert levels["ALL"] > levels["ERROR"] > levels["FATAL"] > levels["OFF"] == 0
    assert usage.provenance == {}


def test_the_report_puts_both_modes_side_by_side_and_ends_with_the_scripted_line(measured):
    prices, usages = measured
    costs = {mode: price(usage, prices) for mode, usage in usages.items()}
    text = render(costs, prices)
    assert LAST_LINE.fullmatch(text.splitlines()[-1])
    assert costs["fast-path"].step_functions < costs["standard"].step_functions
    assert "Every figure above is measured" in text


@pytest.mark.parametrize("mode", [DeliveryMode.STANDARD, DeliveryMode.FAST_PATH])
def test_notiflow_cost_reads_a_deployments_histories(mode, capsys):
    settings = stack_settings_for_tests(poller_wait_seconds=1, delivery_mode=mode)
    with EmbeddedStack(settings) as stack, WebhookReceiver(secret=stack.signing_secret) as receiver:
        ids = [f"cost-cli-{uuid.uuid4().hex[:8]}" for _ in range(2)]
        for nid in ids:
            stack.send_notification({"notificationId": nid, "target": {"url": receiver.url("/ok")}, "payload": {}})
        for nid in ids:
            wait_for_item(
                stack.client("dynamodb"),
                stack.table_name,
                {"notificationId": {"S": nid}},
                lambda item: item.get("status", {}).get("S") == "SUCCESS",
                timeout=60,
            )
        exit_code = main(["cost", "--endpoint-url", stack.endpoint_url])
    out = capsys.readouterr().out
    assert exit_code == 0
    assert "not visible in execution histories" in out
    last = re.fullmatch(r"per million: (\S+) Step Functions \$([\d.]+), all-in \$([\d.]+)", out.splitlines()[-1])
    assert last is not None
    if mode is DeliveryMode.STANDARD:
        # Two first-try successes, 6 transitions each: $150.00 per million.
        assert last.groups()[:2] == ("standard", "150.00")
    else:
        # One Express run each ($1 per million) of at least 100 ms at 64 MB, no Standard transition.
        assert last.group(1) == "fast-path"
        assert 1.10 <= float(last.group(2)) < 3.0
