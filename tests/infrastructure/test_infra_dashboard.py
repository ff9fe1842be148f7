"""The CloudWatch dashboard: what each row reads, under which stage, and that the Lambdas emit it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from lambdas.shared.models import Category
from tests.infrastructure.conftest import Synthesized, synthesize_notiflow

REPO = Path(__file__).resolve().parents[2]


def body(stack: Synthesized) -> dict[str, Any]:
    """The dashboard body with each CloudFormation token written as <Ref:Id> or <Id.Attribute>."""
    (dashboard,) = stack.resources("AWS::CloudWatch::Dashboard").values()
    text = dashboard["Properties"]["DashboardBody"]
    parts = text["Fn::Join"][1] if isinstance(text, dict) else [text]

    def token(part: Any) -> str:
        if isinstance(part, str):
            return part
        if "Ref" in part:
            return f"<Ref:{part['Ref']}>"
        return "<{}.{}>".format(*part["Fn::GetAtt"])

    return json.loads("".join(token(part) for part in parts))


def metrics_of(widget: dict[str, Any]) -> list[tuple[str, str, dict[str, str], str]]:
    """(namespace, metric, dimensions, statistic) of every metric a graph widget plots."""
    found = []
    for row in widget["properties"].get("metrics", []):
        options = row[-1] if isinstance(row[-1], dict) else {}
        names = [item for item in row if isinstance(item, str)]
        dims = dict(zip(names[2::2], names[3::2], strict=True))
        found.append((names[0], names[1], dims, options.get("stat", "")))
    return found


def widget(board: dict[str, Any], title_part: str) -> dict[str, Any]:
    (found,) = [w for w in board["widgets"] if title_part in w["properties"].get("title", "")]
    return found


def logical_id(stack: Synthesized, resource_type: str, name_property: str, name: str) -> str:
    (found,) = [
        lid for lid, res in stack.resources(resource_type).items() if res["Properties"].get(name_property) == name
    ]
    return found


@pytest.fixture(scope="module")
def dev_stack(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize_notiflow(tmp_path_factory.mktemp("cdk-dashboard-dev"), {"stage": "dev"})


def test_the_intake_row_shows_messages_queue_age_and_ingest_concurrency(default_stack):
    # Given the default stack's dashboard and its intake queue
    board = body(default_stack)
    queue = logical_id(default_stack, "AWS::SQS::Queue", "QueueName", "notiflow-intake")
    ingest = logical_id(default_stack, "AWS::Lambda::Function", "FunctionName", "notiflow-ingest")
    (age_alarm,) = [
        a
        for a in default_stack.resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "ApproximateAgeOfOldestMessage"
    ]
    # When the intake widgets are read
    sent = metrics_of(widget(board, "messages sent and received"))
    age = widget(board, "age of the oldest message")
    concurrency = widget(board, "invocations in flight")
    # Then they plot what was sent and received, the oldest message against the alarm's threshold, and ingest's
    # concurrency against the trigger's maximum
    queue_dims = {"QueueName": f"<{queue}.QueueName>"}
    assert ("AWS/SQS", "NumberOfMessagesSent", queue_dims, "Sum") in sent
    assert ("AWS/SQS", "NumberOfMessagesReceived", queue_dims, "Sum") in sent
    assert metrics_of(age) == [("AWS/SQS", "ApproximateAgeOfOldestMessage", queue_dims, "Maximum")]
    assert age["properties"]["annotations"]["horizontal"][0]["value"] == age_alarm["Properties"]["Threshold"]
    assert ("AWS/Lambda", "ConcurrentExecutions", {"FunctionName": f"<Ref:{ingest}>"}, "Maximum") in metrics_of(
        concurrency
    )
    assert concurrency["properties"]["annotations"]["horizontal"][0]["value"] == 20


def test_the_delivery_rows_show_every_category_retries_failures_and_latency(default_stack):
    # Given the default stack's dashboard
    board = body(default_stack)
    # When the delivery widgets are read
    attempts = metrics_of(widget(board, "Delivery attempts by category"))
    retries = metrics_of(widget(board, "Retries"))
    failures = metrics_of(widget(board, "Failures"))
    latency = metrics_of(widget(board, "Delivery latency (ms), p50"))
    # Then each reads the deliver step's Powertools metrics, per category, under the stage's service
    for category in Category:
        dims = {"service": "notiflow", "category": category.value}
        assert ("Notiflow", "DeliveryAttempt", dims, "Sum") in attempts
        assert ("Notiflow", "DeliveryRetry", dims, "Sum") in retries
        assert ("Notiflow", "DeliveryFailed", dims, "Sum") in failures
    assert ("Notiflow", "HostBusy", {"service": "notiflow"}, "Sum") in retries
    assert {metric[1] for metric in failures if metric[0] == "AWS/States"} == {"ExecutionsFailed"}
    assert len([m for m in failures if m[0] == "AWS/States"]) == 2  # both machines
    assert ("Notiflow", "DeliveryResponseTime", {"service": "notiflow", "category": "SUCCESS"}, "p95") in latency


def test_latency_per_host_is_a_logs_insights_query_over_the_deliver_log_group(default_stack):
    # Given the default stack's dashboard
    board = body(default_stack)
    # When the per-host widget is read
    (logs,) = [w for w in board["widgets"] if w["type"] == "log"]
    query = logs["properties"]["query"]
    # Then it reads the deliver step's log group and groups the EMF properties by host (no per-host metric)
    assert query.startswith("SOURCE '/aws/lambda/notiflow-deliver'")
    assert "by targetHost" in query
    assert "pct(responseTimeMs, 95)" in query
    notiflow_metrics = {m[1] for w in board["widgets"] if w["type"] == "metric" for m in metrics_of(w)}
    assert not any("host" in name.lower() and name != "HostBusy" for name in notiflow_metrics)


def test_every_metric_the_dashboard_reads_is_one_a_lambda_emits(default_stack):
    # Given the Notiflow (Powertools) metrics on the dashboard and the metric names in the Lambdas' code
    board = body(default_stack)
    read = {m[1] for w in board["widgets"] if w["type"] == "metric" for m in metrics_of(w) if m[0] == "Notiflow"}
    source = "\n".join(path.read_text(encoding="utf-8") for path in (REPO / "lambdas").rglob("*.py"))
    names = re.findall(r"add_metric\(\s*name=(.*?),\s*unit=", source, flags=re.DOTALL)  # a name or an if-else of two
    emitted = {word for name in names for word in re.findall(r'"(\w+)"', name)}
    # When they are compared
    # Then the dashboard plots nothing no function emits
    assert read
    assert read <= emitted, read - emitted
    # And the per-host properties the log widget reads are what the deliver step writes
    assert 'key="targetHost"' in source
    assert 'key="responseTimeMs"' in source


def test_a_stage_has_its_own_dashboard_over_its_own_metrics(default_stack, dev_stack):
    # Given the default and the dev stage
    # When their dashboards are read
    default_name = next(iter(default_stack.resources("AWS::CloudWatch::Dashboard").values()))["Properties"]
    dev_name = next(iter(dev_stack.resources("AWS::CloudWatch::Dashboard").values()))["Properties"]
    board = body(dev_stack)
    # Then each is named after its stage and reads only its own service's metrics and log group
    assert default_name["DashboardName"] == "notiflow"
    assert dev_name["DashboardName"] == "notiflow-dev"
    services = {
        m[2]["service"] for w in board["widgets"] if w["type"] == "metric" for m in metrics_of(w) if "service" in m[2]
    }
    assert services == {"notiflow-dev"}
    (logs,) = [w for w in board["widgets"] if w["type"] == "log"]
    assert logs["properties"]["query"].startswith("SOURCE '/aws/lambda/notiflow-dev-deliver'")
    assert dev_stack.raw["Outputs"]["DashboardName"]["Value"] == {
        "Ref": next(iter(dev_stack.resources("AWS::CloudWatch::Dashboard")))
    }
