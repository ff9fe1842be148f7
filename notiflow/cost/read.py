"""``notiflow cost`` against a deployment: the execution histories of a time window, priced.

Against the embedded stack (``--endpoint-url``) both workflows' runs are listable with their
histories. Against AWS, Standard runs are (ListExecutions, GetExecutionHistory); Express runs are
not (AWS keeps none: only CloudWatch Logs at level ALL shows them), so the Express rows say so.

What a history shows: Standard transitions, each Express run's duration, every Lambda task's
invocation and duration (from its TaskStarted to its end, at the spec's memory), and each run's
execution-log events. What it cannot show (ingest's invocations, the Lambdas' DynamoDB and SQS
traffic, their log lines) is metered by ``make cost`` on the embedded stack; those rows read
"not visible in histories" here, and the all-in figure leaves them out.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from infrastructure.spec import MEMORY_MB, STANDARD_LOG_LEVEL, Names
from notiflow.cost import histories
from notiflow.cost.collect import Run, add_express_runs, add_standard_runs
from notiflow.cost.prices import PriceFile
from notiflow.cost.usage import Usage

NOT_VISIBLE = "not visible in execution histories (make cost meters it on the embedded stack); left out of all-in"


def fast_path_arn(state_machine_arn: str) -> str:
    """The Express machine's ARN beside the Standard one: same account and prefix, the fast-path name."""
    arn_prefix, _, name = state_machine_arn.rpartition(":")
    default = Names()
    prefix = name.removesuffix(default.state_machine.removeprefix(default.prefix))
    return f"{arn_prefix}:{Names(prefix=prefix).fast_path_state_machine}"


def execution_history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    """Every event of a run, oldest first."""
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
    return [event for page in pages for event in page["events"]]


def _executions(sfn: Any, machine_arn: str, since: datetime | None) -> Iterator[dict[str, Any]]:
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=machine_arn):
        for execution in page["executions"]:
            if execution["status"] == "RUNNING":
                continue
            if since is not None and execution["startDate"] < since:
                continue
            yield execution


def read_usage(
    sfn: Any,
    state_machine_arn: str,
    prices: PriceFile,
    *,
    since: datetime | None = None,
    express_log_level: str = "ERROR",
    definition: dict[str, Any] | None = None,
) -> Usage:
    """Usage of the finished runs of both workflows in the window, from their histories."""
    standard = [
        Run(e["executionArn"], execution_history(sfn, e["executionArn"]))
        for e in _executions(sfn, state_machine_arn, since)
    ]
    express: list[Run] = []
    express_note = None
    try:
        express = [
            Run(e["executionArn"], execution_history(sfn, e["executionArn"]), express=True)
            for e in _executions(sfn, fast_path_arn(state_machine_arn), since)
        ]
    except ClientError as exc:
        express_note = f"Express runs not listed ({exc.response.get('Error', {}).get('Code')}): AWS keeps none"
    # Both ARN shapes (...:execution:<machine>:<name> and ...:express:<machine>:<name>:<id>) put the name 8th.
    names = {run.arn.split(":")[7] for run in [*standard, *express]}
    usage = Usage(mode="fast-path" if express else "standard", notifications=len(names))
    add_standard_runs(usage, standard, STANDARD_LOG_LEVEL)
    add_express_runs(usage, express, express_log_level, prices, definition or {}, 1.0)
    for run in [*standard, *express]:
        for call in histories.task_calls(run.events):
            if call.resource_type == "lambda":
                function = usage.function(f"{call.state} (task)", MEMORY_MB)
                function.invocations += 1
                function.billed_ms += max(1, int(call.duration_ms + 0.999))
                if call.state == "Deliver":
                    usage.delivery_attempts += 1
    usage.provenance["lambda"] = "Lambda tasks from the histories (TaskStarted to their end); ingest " + NOT_VISIBLE
    for component in ("dynamodb", "sqs", "lambda_logs"):
        usage.provenance[component] = NOT_VISIBLE
    if express_note:
        usage.provenance["express"] = express_note
    return usage
