"""The embedded stack provisions what the CDK app deploys, under the shared names."""

from __future__ import annotations

import json
import os

from lambdas.shared.constants import (
    DEFAULT_DLQ_NAME,
    DEFAULT_QUEUE_NAME,
    STEP_INGEST,
    TABLE_PARTITION_KEY,
    TABLE_TTL_ATTRIBUTE,
    WORKFLOW_STEPS,
    DeliveryMode,
    EnvVar,
    handler_path,
)
from workflows.definition import fast_path_attempts, placeholder_names, render_definition


def test_table_has_the_notification_key_and_ttl(local_stack):
    dynamodb = local_stack.client("dynamodb")

    table = dynamodb.describe_table(TableName=local_stack.table_name)["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=local_stack.table_name)["TimeToLiveDescription"]

    assert table["KeySchema"] == [{"AttributeName": TABLE_PARTITION_KEY, "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": TABLE_TTL_ATTRIBUTE}


def test_intake_queue_redrives_to_the_dlq_after_the_spec_receive_count(local_stack):
    sqs = local_stack.client("sqs")

    attributes = sqs.get_queue_attributes(QueueUrl=local_stack.queue_url, AttributeNames=["All"])["Attributes"]

    assert local_stack.queue_url.endswith("/" + DEFAULT_QUEUE_NAME)
    assert local_stack.dlq_url.endswith("/" + DEFAULT_DLQ_NAME)
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": local_stack.dlq_arn,
        "maxReceiveCount": local_stack.spec.intake.max_receive_count,
    }


def test_signing_secret_is_a_standard_webhooks_key(local_stack):
    secret = local_stack.client("secretsmanager").get_secret_value(SecretId=local_stack.signing_secret_name)

    assert secret["SecretString"] == local_stack.signing_secret
    assert local_stack.signing_secret.startswith("whsec_")
    assert secret["ARN"] == local_stack.signing_secret_arn


def test_five_functions_share_one_local_environment(local_stack):
    lambdas = local_stack.client("lambda")

    configurations = {
        step: lambdas.get_function_configuration(FunctionName=name) for step, name in local_stack.function_names.items()
    }

    assert set(configurations) == {STEP_INGEST, *WORKFLOW_STEPS}
    environments = [c["Environment"]["Variables"] for c in configurations.values()]
    assert all(environment == environments[0] for environment in environments)
    environment = environments[0]
    assert environment[EnvVar.TABLE_NAME] == local_stack.table_name
    # The default (deployed) mode is fast-path: ingest starts the Express workflow
    assert local_stack.delivery_mode is DeliveryMode.FAST_PATH
    assert environment[EnvVar.FAST_PATH_STATE_MACHINE_ARN] == local_stack.fast_path_state_machine_arn
    assert EnvVar.STATE_MACHINE_ARN not in environment
    assert environment[EnvVar.SIGNING_SECRET_ID] == local_stack.signing_secret_arn
    assert environment[EnvVar.ALLOWED_SCHEMES] == "http,https"
    assert float(environment[EnvVar.CONNECT_TIMEOUT_SECONDS]) == local_stack.settings.connect_timeout_seconds
    assert float(environment[EnvVar.READ_TIMEOUT_SECONDS]) == local_stack.settings.read_timeout_seconds
    for step, configuration in configurations.items():
        assert configuration["Runtime"] == local_stack.spec.function(step).runtime
        assert configuration["Handler"] == handler_path(step)
        assert configuration["FunctionArn"] == local_stack.function_arns[step]


def test_state_machine_runs_the_rendered_repository_definition(local_stack):
    described = local_stack.client("stepfunctions").describe_state_machine(
        stateMachineArn=local_stack.state_machine_arn
    )

    expected = render_definition(
        {
            "ValidateFunctionArn": local_stack.function_arns["validate"],
            "DeduplicateFunctionArn": local_stack.function_arns["deduplicate"],
            "DeliverFunctionArn": local_stack.function_arns["deliver"],
            "FailureGateFunctionArn": local_stack.function_arns["failure_gate"],
            "NotificationsTableName": local_stack.table_name,
        },
        # fast-path mode: the Standard retrier continues the schedule after the fast path's attempts
        fast_attempts=fast_path_attempts(),
    )
    assert described["definition"] == expected
    assert placeholder_names(described["definition"]) == set()
    assert described["type"] == "STANDARD"


def test_process_environment_points_at_the_stack(local_stack):
    assert os.environ["AWS_ENDPOINT_URL"] == local_stack.endpoint_url
    assert os.environ["MOTO_PORT"] == str(local_stack.port)
    assert local_stack.endpoint_url.startswith("http://127.0.0.1:")
