"""Alarms for what needs a human, and where they go: a new SNS topic mailing ``alarmEmail``, an existing
topic (``alarmTopicArn``), or both.

- Failed executions: every FAILED Standard run is a notification that was rejected or could not be
  delivered, waiting for a look and maybe a redrive. A FAILED fast-path (Express) run was rejected, or
  broke before its outcome was durable (its message comes back for another run).
- Timed-out and aborted executions of either machine: a Standard run past its limits or stopped by
  someone, an Express run that hit its timeout (its message comes back; many of them mean the fast
  path's budget is too tight). The Express machine has no history to look at: these come from its
  CloudWatch metrics (AWS/States, by state machine ARN), like the Standard one's.
- Queue age: the oldest message on the intake queue has waited longer than twice the queue's visibility
  timeout, so it was not taken at all (ingest is throttled, saturated at its maximum concurrency, or
  broken) or its runs failed at least twice; either way notifications are late.
- DLQ depth: a message the ingest Lambda could not turn into a run; on the reconciler's DLQ, a run status
  change the reconciler could not handle (its record may stay PROCESSING).
- Lambda throttles, every Notiflow function: the account or a function ran out of concurrency. The
  workflow retries a throttled step (and SQS redelivers a throttled batch), so a throttle loses
  nothing, but it delays deliveries and says the concurrency settings need a look.
- Lambda errors. Ingest, deduplicate and the reconciler raise only when something is broken, so one error alarms.
  Validate and deliver raise named errors as part of the workflow contract (a rejection, a failed
  attempt), so their alarm is on the error rate staying high: producers sending garbage, or
  targets failing wholesale. The failure gate raises on every failed run by design; those runs
  are already counted by the failed-executions alarm.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infrastructure.config import NotiflowConfig
from infrastructure.functions import NotiflowFunction
from infrastructure.intake import Intake
from infrastructure.reconcile import Reconciler
from infrastructure.spec import NotiflowSpec, pascal
from infrastructure.workflow import Workflow
from lambdas.shared.constants import STEP_DEDUPLICATE, STEP_DELIVER, STEP_VALIDATE

PERIOD: Final = cdk.Duration.minutes(5)
QUEUE_AGE_VISIBILITY_TIMEOUTS: Final = 2
"""The queue-age alarm fires once the oldest message is older than this many visibility timeouts."""
CONTRACT_ERROR_RATE_PERCENT: Final = 50
CONTRACT_ERROR_PERIODS: Final = 3


class Observability(Construct):
    """CloudWatch alarms on the workflow, the DLQ and the Lambdas; actions go to the topic if there is one."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: NotiflowConfig,
        spec: NotiflowSpec,
        workflow: Workflow,
        intake: Intake,
        reconciler: Reconciler,
        functions: Sequence[NotiflowFunction],
    ) -> None:
        super().__init__(scope, construct_id)
        self.names = spec.names
        self.topic: sns.Topic | None = None
        """The topic this stack creates for ``alarmEmail``."""
        self.topics: list[sns.ITopic] = []
        """Every topic the alarms notify: the created one and/or the existing ``alarmTopicArn``."""
        if config.alarm_email:
            self.topic = sns.Topic(self, "AlarmTopic", display_name=f"{spec.names.prefix} alarms", enforce_ssl=True)
            self.topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
            self.topics.append(self.topic)
        if config.alarm_topic_arn:
            self.topics.append(sns.Topic.from_topic_arn(self, "ExistingAlarmTopic", config.alarm_topic_arn))
        self.queue_age_threshold_seconds = queue_age_threshold = (
            QUEUE_AGE_VISIBILITY_TIMEOUTS * spec.intake.visibility_timeout_seconds
        )

        self.alarms: list[cloudwatch.Alarm] = [
            self._at_least_one(
                "FailedExecutions",
                workflow.state_machine.metric_failed(period=PERIOD, statistic="Sum"),
                "Notiflow delivery runs FAILED: rejected input or a delivery that gave up; inspect and redrive.",
            ),
            self._at_least_one(
                "TimedOutExecutions",
                workflow.state_machine.metric_timed_out(period=PERIOD, statistic="Sum"),
                "Notiflow Standard delivery runs TIMED_OUT; inspect and redrive.",
            ),
            self._at_least_one(
                "AbortedExecutions",
                workflow.state_machine.metric_aborted(period=PERIOD, statistic="Sum"),
                "Notiflow Standard delivery runs were ABORTED (stopped); the reconciler records them FAILED. "
                "Redrive them if the stop was a mistake.",
            ),
            self._at_least_one(
                "FastPathFailedExecutions",
                workflow.fast_path.metric_failed(period=PERIOD, statistic="Sum"),
                "Notiflow fast-path runs FAILED: rejected input, or a run that broke before its outcome was durable "
                "(its message returns to the queue); the Express log group has the failed runs.",
            ),
            self._at_least_one(
                "FastPathTimedOutExecutions",
                workflow.fast_path.metric_timed_out(period=PERIOD, statistic="Sum"),
                "Notiflow fast-path runs hit the Express timeout; their messages return to the queue.",
            ),
            self._at_least_one(
                "FastPathAbortedExecutions",
                workflow.fast_path.metric_aborted(period=PERIOD, statistic="Sum"),
                "Notiflow fast-path (Express) runs were ABORTED; their messages return to the queue.",
            ),
            cloudwatch.Alarm(
                self,
                "IntakeQueueAge",
                alarm_name=self.names.alarm("IntakeQueueAge"),
                alarm_description=(
                    f"The oldest Notiflow intake message waited over {queue_age_threshold} s "
                    f"({QUEUE_AGE_VISIBILITY_TIMEOUTS} visibility timeouts): ingest is throttled, at its maximum "
                    "concurrency or failing, so notifications are late."
                ),
                metric=intake.queue.metric_approximate_age_of_oldest_message(period=PERIOD, statistic="Maximum"),
                threshold=queue_age_threshold,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            self._at_least_one(
                "DeadLetterQueueNotEmpty",
                intake.dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=PERIOD, statistic="Maximum"
                ),
                "Notiflow intake messages reached the DLQ: ingest could not start a run for them.",
            ),
            self._at_least_one(
                "IngestErrors",
                intake.ingest.function.metric_errors(period=PERIOD, statistic="Sum"),
                "The Notiflow ingest Lambda failed; its messages return to the queue and may reach the DLQ.",
            ),
            self._at_least_one(
                "DeduplicateErrors",
                workflow.functions[STEP_DEDUPLICATE].function.metric_errors(period=PERIOD, statistic="Sum"),
                "The Notiflow deduplicate Lambda failed: the notifications table is unreachable or throttling.",
            ),
            self._at_least_one(
                "ReconcilerDeadLetterQueueNotEmpty",
                reconciler.dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=PERIOD, statistic="Maximum"
                ),
                "Notiflow status-change events reached the reconciler's DLQ: runs that stopped outside the workflow "
                "may have records still PROCESSING; replay the events or reconcile those records.",
            ),
            self._at_least_one(
                "ReconcilerErrors",
                reconciler.function.function.metric_errors(period=PERIOD, statistic="Sum"),
                "The Notiflow reconciler Lambda failed; EventBridge and Lambda retry, then the event goes to its DLQ.",
            ),
            self._error_rate(workflow.functions[STEP_VALIDATE], "Notiflow is rejecting most notifications."),
            self._error_rate(workflow.functions[STEP_DELIVER], "Most Notiflow delivery attempts are failing."),
        ]
        self.alarms += [
            self._at_least_one(
                f"{pascal(step.step)}Throttles",
                step.function.metric_throttles(period=PERIOD, statistic="Sum"),
                f"The Notiflow {step.step} Lambda was throttled (out of concurrency); the work is retried, late.",
            )
            for step in functions
        ]
        for topic in self.topics:
            action = cloudwatch_actions.SnsAction(topic)
            for alarm in self.alarms:
                alarm.add_alarm_action(action)
                alarm.add_ok_action(action)

    def _at_least_one(self, construct_id: str, metric: cloudwatch.IMetric, description: str) -> cloudwatch.Alarm:
        return cloudwatch.Alarm(
            self,
            construct_id,
            alarm_name=self.names.alarm(construct_id),
            alarm_description=description,
            metric=metric,
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def _error_rate(self, step: NotiflowFunction, description: str) -> cloudwatch.Alarm:
        function = step.function
        rate = cloudwatch.MathExpression(
            expression="IF(invocations > 0, 100 * errors / invocations, 0)",
            using_metrics={
                "errors": function.metric_errors(period=PERIOD, statistic="Sum"),
                "invocations": function.metric_invocations(period=PERIOD, statistic="Sum"),
            },
            period=PERIOD,
            label=f"{step.step} error rate (%)",
        )
        construct_id = f"{pascal(step.step)}ErrorRate"
        return cloudwatch.Alarm(
            self,
            construct_id,
            alarm_name=self.names.alarm(construct_id),
            alarm_description=(
                f"{description} Over {CONTRACT_ERROR_RATE_PERCENT}% of {step.step} invocations raised "
                f"for {CONTRACT_ERROR_PERIODS} periods of {PERIOD.to_minutes()} minutes."
            ),
            metric=rate,
            threshold=CONTRACT_ERROR_RATE_PERCENT,
            evaluation_periods=CONTRACT_ERROR_PERIODS,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
