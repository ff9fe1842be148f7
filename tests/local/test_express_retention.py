"""Express runs are kept apart from Standard runs, for a bounded count, and an evicted one is freed."""

from __future__ import annotations

import gc
import json
import uuid
import weakref

import pytest
from botocore.exceptions import ClientError
from moto.stepfunctions.parser.models import stepfunctions_parser_backends

from notiflow.local.engine import retention
from notiflow.local.fixtures import finished_execution, stack_settings_for_tests
from notiflow.local.stack import STATE_MACHINE_ROLE_NAME, StackSettings
from notiflow.shared.waiting import wait_until
from tests.local.helpers import create_state_machine, start

EXPRESS_RETENTION = 3


@pytest.fixture(scope="module")
def local_stack_settings() -> StackSettings:
    return stack_settings_for_tests(start_poller=False, execution_retention=10, express_retention=EXPRESS_RETENTION)


def _missing(sfn, arn: str) -> bool:
    try:
        sfn.describe_execution(executionArn=arn)
    except ClientError as error:
        return error.response["Error"]["Code"] == "ExecutionDoesNotExist"
    return False


def test_express_runs_beyond_their_retention_are_evicted_and_freed_without_touching_standard_runs(local_stack):
    # Given a Standard run that finished first
    sfn = local_stack.client("stepfunctions")
    passing = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    standard_machine = create_state_machine(local_stack, passing)
    standard_arn = start(local_stack, standard_machine)
    assert finished_execution(sfn, standard_arn).status == "SUCCEEDED"
    express_machine = sfn.create_state_machine(
        name=f"express-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(passing),
        roleArn=f"arn:aws:iam::{local_stack.account_id}:role/{STATE_MACHINE_ROLE_NAME}",
        type="EXPRESS",
    )["stateMachineArn"]
    backend = stepfunctions_parser_backends[local_stack.account_id][local_stack.region]

    # When six Express runs (all under one name) end one after the other
    arns, runs = [], []
    for _ in range(6):
        arn = sfn.start_sync_execution(stateMachineArn=express_machine, name="same-name")["executionArn"]
        arns.append(arn)
        runs.append(weakref.ref(backend.describe_execution(arn)))

    # Then the three oldest are gone from the API and from memory, the three newest stay
    wait_until(
        lambda: [_missing(sfn, arn) for arn in arns],
        lambda missing: missing == [True] * 3 + [False] * 3,
        timeout=10,
        describe="the three oldest Express runs to be evicted",
    )
    listed = {e["executionArn"] for e in sfn.list_executions(stateMachineArn=express_machine)["executions"]}
    assert listed == set(arns[3:])
    gc.collect()
    assert [run() is None for run in runs] == [True] * 3 + [False] * 3
    # And the Standard run, older than all of them, is still there
    assert sfn.describe_execution(executionArn=standard_arn)["status"] == "SUCCEEDED"
    assert retention.kept(retention.EXPRESS) == EXPRESS_RETENTION
