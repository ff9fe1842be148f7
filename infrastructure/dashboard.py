"""The CloudWatch dashboard: intake, runs, deliveries by category, retries, failures, latency per host.

One dashboard per stage (``notiflow`` or ``notiflow-<stage>``). Delivery figures are the metrics the
deliver step emits with Powertools (namespace ``Notiflow``, dimensions ``service`` = the stage's prefix
and ``category``): ``DeliveryAttempt``, ``DeliverySucceeded``/``DeliveryFailed``, ``DeliveryRetry``
(an attempt after a notification's first) and ``DeliveryResponseTime``; ``HostBusy`` (service only)
counts attempts that waited for a host's slot.

Latency per host is a Logs Insights widget over the deliver step's log group, not a metric: the
deliver step writes ``targetHost`` and ``responseTimeMs`` into each attempt's EMF line as properties.
A host dimension would make a custom metric per host and category (hosts are whatever senders use:
200 hosts x 5 categories would be about $300 a month), while the properties cost nothing beyond the
log line already paid for and the query is billed per GB scanned only when the dashboard is viewed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from infrastructure.functions import NotiflowFunction
from infrastructure.intake import Intake
from infrastructure.spec import NotiflowSpec
from infrastructure.workflow import Workflow
from lambdas.shared.constants import METRICS_NAMESPACE, STEP_DELIVER, STEP_INGEST
from lambdas.shared.models import Category

PERIOD: Final = cdk.Duration.minutes(5)
WIDTH: Final = 8
HEIGHT: Final = 6
HOST_LATENCY_QUERY: Final = (
    "filter ispresent(targetHost) and ispresent(responseTimeMs)",
    "stats count(*) as attempts, avg(responseTimeMs) as avgMs, pct(responseTimeMs, 50) as p50Ms, "
    "pct(responseTimeMs, 95) as p95Ms, max(responseTimeMs) as maxMs by targetHost",
    "sort p95Ms desc",
    "limit 50",
)
"""Latency per target host, slowest first, from the properties of the deliver step's EMF lines."""


class Dashboard(Construct):
    """The stage's dashboard, built from the same constructs the alarms watch."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: NotiflowSpec,
        workflow: Workflow,
        intake: Intake,
        functions: Sequence[NotiflowFunction],
        queue_age_threshold_seconds: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.service = spec.names.prefix
        queue, ingest = intake.queue, intake.ingest.function
        deliver = workflow.functions[STEP_DELIVER]
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=spec.names.dashboard,
            default_interval=cdk.Duration.hours(3),
        )
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=f"# {self.service}: intake",
                width=24,
                height=1,
                background=cloudwatch.TextWidgetBackground.TRANSPARENT,
            )
        )
        self.dashboard.add_widgets(
            self._graph(
                "Intake: messages sent and received",
                [
                    queue.metric_number_of_messages_sent(period=PERIOD, statistic="Sum", label="sent"),
                    queue.metric_number_of_messages_received(period=PERIOD, statistic="Sum", label="received"),
                    queue.metric_number_of_messages_deleted(period=PERIOD, statistic="Sum", label="done (deleted)"),
                ],
            ),
            self._graph(
                "Intake: age of the oldest message (s)",
                [queue.metric_approximate_age_of_oldest_message(period=PERIOD, statistic="Maximum", label="oldest")],
                annotation=(queue_age_threshold_seconds, "queue-age alarm"),
            ),
            self._graph(
                f"{STEP_INGEST}: invocations in flight (maximum concurrency {spec.intake.max_concurrency})",
                [
                    ingest.metric(
                        "ConcurrentExecutions", period=PERIOD, statistic="Maximum", label="concurrent invocations"
                    ),
                    intake.dead_letter_queue.metric_approximate_number_of_messages_visible(
                        period=PERIOD, statistic="Maximum", label="on the DLQ"
                    ),
                ],
                annotation=(spec.intake.max_concurrency, "maximum concurrency"),
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown="# deliveries", width=24, height=1, background=cloudwatch.TextWidgetBackground.TRANSPARENT
            )
        )
        self.dashboard.add_widgets(
            self._graph("Delivery attempts by category", self._by_category("DeliveryAttempt"), stacked=True),
            self._graph(
                "Retries: attempts after a notification's first, and waits for a busy host",
                [
                    *self._by_category("DeliveryRetry"),
                    self._notiflow("HostBusy", {"service": self.service}, "host busy (nothing sent)"),
                ],
                stacked=True,
            ),
            self._graph(
                "Failures: failed attempts by category, failed runs",
                [
                    *self._by_category("DeliveryFailed"),
                    workflow.state_machine.metric_failed(period=PERIOD, statistic="Sum", label="Standard runs FAILED"),
                    workflow.fast_path.metric_failed(period=PERIOD, statistic="Sum", label="fast-path runs FAILED"),
                ],
            ),
        )
        self.dashboard.add_widgets(
            self._graph(
                "Delivery latency (ms), p50 and p95",
                [
                    self._notiflow(
                        "DeliveryResponseTime",
                        {"service": self.service, "category": category.value},
                        f"{category.value} {statistic}",
                        statistic=statistic,
                    )
                    for category in (Category.SUCCESS, Category.SERVER_ERROR, Category.TIMEOUT)
                    for statistic in ("p50", "p95")
                ],
            ),
            cloudwatch.LogQueryWidget(
                title="Delivery latency per target host (ms), slowest first",
                log_group_names=[deliver.spec.log_group],
                query_lines=list(HOST_LATENCY_QUERY),
                view=cloudwatch.LogQueryVisualizationType.TABLE,
                width=16,
                height=HEIGHT,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown="# runs and functions",
                width=24,
                height=1,
                background=cloudwatch.TextWidgetBackground.TRANSPARENT,
            )
        )
        self.dashboard.add_widgets(
            *(
                self._graph(
                    f"{title} runs",
                    [
                        machine.metric_started(period=PERIOD, statistic="Sum", label="started"),
                        machine.metric_succeeded(period=PERIOD, statistic="Sum", label="succeeded"),
                        machine.metric_failed(period=PERIOD, statistic="Sum", label="failed"),
                        machine.metric_timed_out(period=PERIOD, statistic="Sum", label="timed out"),
                        machine.metric_aborted(period=PERIOD, statistic="Sum", label="aborted"),
                    ],
                )
                for title, machine in (
                    ("Standard", workflow.state_machine),
                    ("Fast-path (Express)", workflow.fast_path),
                )
            ),
            self._graph(
                "Lambda errors and throttles",
                [
                    metric
                    for step in functions
                    for metric in (
                        step.function.metric_errors(period=PERIOD, statistic="Sum", label=f"{step.step} errors"),
                        step.function.metric_throttles(period=PERIOD, statistic="Sum", label=f"{step.step} throttles"),
                    )
                ],
            ),
        )

    def _notiflow(self, name: str, dimensions: dict[str, str], label: str, statistic: str = "Sum") -> cloudwatch.Metric:
        """A metric the Lambdas emit with Powertools, under this stage's service dimension."""
        return cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=name,
            dimensions_map=dimensions,
            period=PERIOD,
            statistic=statistic,
            label=label,
        )

    def _by_category(self, name: str) -> list[cloudwatch.IMetric]:
        return [
            self._notiflow(name, {"service": self.service, "category": category.value}, category.value)
            for category in Category
        ]

    @staticmethod
    def _graph(
        title: str,
        metrics: Sequence[cloudwatch.IMetric],
        *,
        stacked: bool = False,
        annotation: tuple[float, str] | None = None,
    ) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(
            title=title,
            left=list(metrics),
            stacked=stacked,
            width=WIDTH,
            height=HEIGHT,
            left_annotations=(
                [cloudwatch.HorizontalAnnotation(value=annotation[0], label=annotation[1])] if annotation else None
            ),
        )
