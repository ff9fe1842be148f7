"""Template assertions on the synthesized Notiflow stack: resources, properties, wiring and least privilege."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match

from infrastructure.config import NotiflowConfig
from infrastructure.spec import ARCHITECTURE, RUNTIME
from lambdas.shared.constants import (
    DEFAULT_DLQ_NAME,
    DEFAULT_QUEUE_NAME,
    DEFAULT_STATE_MACHINE_NAME,
    DEFAULT_TABLE_NAME,
    STEP_DEDUPLICATE,
    STEP_DELIVER,
    STEP_FAILURE_GATE,
    STEP_INGEST,
    STEP_VALIDATE,
    TABLE_PARTITION_KEY,
    TABLE_TTL_ATTRIBUTE,
    WORKFLOW_STEPS,
    EnvVar,
    handler_path,
)

ALL_STEPS = (STEP_INGEST, *WORKFLOW_STEPS)


def only(resources: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    assert len(resources) == 1, sorted(resources)
    return next(iter(resources.items()))


def function_for(stack, step: str) -> tuple[str, dict[str, Any]]:
    return only(
        {
            lid: res
            for lid, res in stack.resources("AWS::Lambda::Function").items()
            if res["Properties"].get("Handler") == handler_path(step)
        }
    )


def arn_of(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def statements_of_role(stack, role_arn: dict[str, Any]) -> list[dict[str, Any]]:
    role_id = role_arn["Fn::GetAtt"][0]
    role = stack.raw["Resources"][role_id]["Properties"]
    statements = [s for policy in role.get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]
    for policy in stack.resources("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def actions(statement: dict[str, Any]) -> list[str]:
    value = statement["Action"]
    return [value] if isinstance(value, str) else value


def resources(statement: dict[str, Any]) -> list[Any]:
    value = statement["Resource"]
    return value if isinstance(value, list) else [value]


def granted(statements: list[dict[str, Any]], prefix: str) -> list[tuple[str, Any]]:
    """(action, resource) pairs whose action starts with ``prefix``, e.g. ``dynamodb:``."""
    return sorted(
        (
            (action, res)
            for s in statements
            for action in actions(s)
            for res in resources(s)
            if action.startswith(prefix)
        ),
        key=repr,
    )


def table_id(stack) -> str:
    return only(stack.resources("AWS::DynamoDB::Table"))[0]


def test_the_stack_holds_exactly_the_expected_resources(default_stack):
    # Given the default configuration
    # When the stack is synthesized
    # Then it holds five step functions, the reconciler and the key generator, three queues, one table, one workflow
    counts = {
        "AWS::Lambda::Function": 7,
        "AWS::SQS::Queue": 3,
        "AWS::SQS::QueuePolicy": 3,
        "AWS::Events::Rule": 1,
        "AWS::DynamoDB::Table": 1,
        "AWS::StepFunctions::StateMachine": 1,
        "AWS::SecretsManager::Secret": 1,
        "Custom::NotiflowSigningKey": 1,
        "AWS::Lambda::EventSourceMapping": 1,
        "AWS::CloudWatch::Alarm": 6,
        "AWS::SNS::Topic": 0,
        "AWS::IAM::Role": 8,
        "AWS::Logs::LogGroup": 8,
    }
    for resource_type, count in counts.items():
        default_stack.template.resource_count_is(resource_type, count)


def test_the_queue_redrives_to_an_encrypted_ssl_only_dlq(default_stack):
    # Given the synthesized queues
    queues = {
        res["Properties"]["QueueName"]: (lid, res) for lid, res in default_stack.resources("AWS::SQS::Queue").items()
    }
    dlq_id, dlq = queues[DEFAULT_DLQ_NAME]
    _, queue = queues[DEFAULT_QUEUE_NAME]
    # When their properties are read
    # Then the queue hands a message to the DLQ after maxReceiveCount receives, and both are encrypted
    assert queue["Properties"]["RedrivePolicy"] == {"deadLetterTargetArn": arn_of(dlq_id), "maxReceiveCount": 5}
    assert queue["Properties"]["VisibilityTimeout"] == 180
    assert dlq["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    for _, res in queues.values():
        assert res["Properties"]["SqsManagedSseEnabled"] is True
    # And both refuse requests without TLS
    for lid, _ in queues.values():
        default_stack.template.has_resource_properties(
            "AWS::SQS::QueuePolicy",
            {
                "Queues": [{"Ref": lid}],
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                    )
                },
            },
        )


def test_ingest_consumes_the_queue_reporting_batch_item_failures(default_stack):
    # Given the ingest function and the intake queue
    ingest_id, _ = function_for(default_stack, STEP_INGEST)
    queue_id = next(
        lid
        for lid, res in default_stack.resources("AWS::SQS::Queue").items()
        if res["Properties"]["QueueName"] == DEFAULT_QUEUE_NAME
    )
    # When the event source mapping is read
    _, mapping = only(default_stack.resources("AWS::Lambda::EventSourceMapping"))
    props = mapping["Properties"]
    # Then one failed message is retried alone and batches hold up to ten messages
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["BatchSize"] == 10
    assert props["EventSourceArn"] == arn_of(queue_id)
    assert props["FunctionName"] == {"Ref": ingest_id}


def test_every_step_runs_its_shared_handler_from_one_asset_without_layers(default_stack):
    # Given the five step functions
    functions = {step: function_for(default_stack, step)[1]["Properties"] for step in ALL_STEPS}
    # When their runtime settings are read
    # Then they share one code asset (Powertools bundled in it: no layer), on the spec's runtime, traced
    assert len({repr(props["Code"]) for props in functions.values()}) == 1
    for props in functions.values():
        assert "Layers" not in props
        assert props["Runtime"] == RUNTIME
        assert props["Architectures"] == [ARCHITECTURE]
        assert props["TracingConfig"] == {"Mode": "Active"}


def test_every_step_reads_its_settings_from_the_shared_env_var_names(default_stack):
    # Given the step functions, the table, the state machine and the signing secret
    table = table_id(default_stack)
    state_machine_id, _ = only(default_stack.resources("AWS::StepFunctions::StateMachine"))
    secret_id, _ = only(default_stack.resources("AWS::SecretsManager::Secret"))
    for step in ALL_STEPS:
        # When a function's environment is read
        env = function_for(default_stack, step)[1]["Properties"]["Environment"]["Variables"]
        # Then it names the table and the safe target policy with lambdas.shared.constants.EnvVar
        assert env[EnvVar.TABLE_NAME] == {"Ref": table}
        assert env[EnvVar.ALLOWED_SCHEMES] == "https"
        assert env[EnvVar.ALLOW_PRIVATE_TARGETS] == "false"
        assert env[EnvVar.CONNECT_TIMEOUT_SECONDS] == "5"
        assert env[EnvVar.READ_TIMEOUT_SECONDS] == "15"
        assert env[EnvVar.POWERTOOLS_SERVICE_NAME] == "notiflow"
        assert env[EnvVar.POWERTOOLS_METRICS_NAMESPACE] == "Notiflow"
        # And only ingest learns the state machine, only deliver the signing secret
        assert (EnvVar.STATE_MACHINE_ARN in env) == (step == STEP_INGEST)
        assert (EnvVar.SIGNING_SECRET_ID in env) == (step == STEP_DELIVER)
    ingest_env = function_for(default_stack, STEP_INGEST)[1]["Properties"]["Environment"]["Variables"]
    deliver_env = function_for(default_stack, STEP_DELIVER)[1]["Properties"]["Environment"]["Variables"]
    assert ingest_env[EnvVar.STATE_MACHINE_ARN] == {"Ref": state_machine_id}
    assert deliver_env[EnvVar.SIGNING_SECRET_ID] == {"Ref": secret_id}


def test_the_deliver_timeout_is_one_attempt_plus_margin(default_stack, custom_stack):
    # Given the default and a custom read timeout
    # When the deliver function's timeout is read
    # Then it follows the configured HTTP timeouts
    for stack, context in ((default_stack, {}), (custom_stack, {"readTimeoutSeconds": "20"})):
        expected = NotiflowConfig.from_context(context.get).deliver_timeout_seconds
        assert function_for(stack, STEP_DELIVER)[1]["Properties"]["Timeout"] == expected


def test_the_table_is_on_demand_recoverable_encrypted_and_expires_records(default_stack):
    # Given the synthesized table
    _, table = only(default_stack.resources("AWS::DynamoDB::Table"))
    # When its properties are read
    props = table["Properties"]
    # Then it is keyed by notificationId and keeps its data by default
    assert props["TableName"] == DEFAULT_TABLE_NAME
    assert props["KeySchema"] == [{"AttributeName": TABLE_PARTITION_KEY, "KeyType": "HASH"}]
    assert props["AttributeDefinitions"][0] == {"AttributeName": TABLE_PARTITION_KEY, "AttributeType": "S"}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["TimeToLiveSpecification"] == {"AttributeName": TABLE_TTL_ATTRIBUTE, "Enabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert table["DeletionPolicy"] == "Retain"


def test_retain_data_false_lets_the_table_and_secret_go_with_the_stack(default_stack, custom_stack):
    # Given the default stack and one deployed with retainData=false
    # When the deletion policies are read
    # Then only the default keeps the table and the signing secret
    for stack, policy in ((default_stack, "Retain"), (custom_stack, "Delete")):
        assert only(stack.resources("AWS::DynamoDB::Table"))[1]["DeletionPolicy"] == policy
        assert only(stack.resources("AWS::SecretsManager::Secret"))[1]["DeletionPolicy"] == policy


def test_the_state_machine_is_standard_traced_and_logs_all_events_without_data(default_stack):
    # Given the synthesized state machine and its log group
    _, machine = only(default_stack.resources("AWS::StepFunctions::StateMachine"))
    props = machine["Properties"]
    log_group_id = props["LoggingConfiguration"]["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"][
        "Fn::GetAtt"
    ][0]
    # When their properties are read
    # Then executions are Standard, traced, and logged at ALL without execution data into a retained group
    assert props["StateMachineName"] == DEFAULT_STATE_MACHINE_NAME
    assert props["StateMachineType"] == "STANDARD"
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    assert props["LoggingConfiguration"]["IncludeExecutionData"] is False
    assert "DefinitionS3Location" not in props
    log_group = default_stack.raw["Resources"][log_group_id]["Properties"]
    assert log_group["RetentionInDays"] == 30
    assert log_group["LogGroupName"].startswith("/aws/vendedlogs/states/")


def test_the_state_machine_may_invoke_exactly_its_four_functions_and_update_exactly_its_table(default_stack):
    # Given the state machine role's statements
    _, machine = only(default_stack.resources("AWS::StepFunctions::StateMachine"))
    statements = statements_of_role(default_stack, machine["Properties"]["RoleArn"])
    # When the Lambda and DynamoDB grants are collected
    step_arns = [arn_of(function_for(default_stack, step)[0]) for step in WORKFLOW_STEPS]
    # Then it invokes only the four workflow functions and only updates items in the table
    assert granted(statements, "lambda:") == sorted((("lambda:InvokeFunction", arn) for arn in step_arns), key=repr)
    assert granted(statements, "dynamodb:") == [("dynamodb:UpdateItem", arn_of(table_id(default_stack)))]
    assert granted(statements, "states:") == []
    assert granted(statements, "secretsmanager:") == []


def test_each_function_role_grants_only_what_its_step_touches(default_stack):
    # Given every step's role statements
    table = arn_of(table_id(default_stack))
    state_machine_id, _ = only(default_stack.resources("AWS::StepFunctions::StateMachine"))
    secret_id, _ = only(default_stack.resources("AWS::SecretsManager::Secret"))
    expected = {
        STEP_INGEST: {"states:": [("states:StartExecution", {"Ref": state_machine_id})], "dynamodb:": []},
        STEP_VALIDATE: {"dynamodb:": [], "states:": []},
        STEP_DEDUPLICATE: {"dynamodb:": [("dynamodb:GetItem", table), ("dynamodb:UpdateItem", table)]},
        STEP_DELIVER: {
            "dynamodb:": [("dynamodb:GetItem", table), ("dynamodb:UpdateItem", table)],
            "secretsmanager:": [("secretsmanager:GetSecretValue", {"Ref": secret_id})],
        },
        STEP_FAILURE_GATE: {"dynamodb:": [], "states:": [], "secretsmanager:": []},
    }
    for step, grants in expected.items():
        _, function = function_for(default_stack, step)
        statements = statements_of_role(default_stack, function["Properties"]["Role"])
        # When the grants per service are collected
        # Then they are exactly the expected ones, and nothing but X-Ray and the own log group is wider
        for prefix, pairs in grants.items():
            assert granted(statements, prefix) == sorted(pairs, key=repr), (step, prefix)
        if step != STEP_DELIVER:
            assert granted(statements, "secretsmanager:") == []
        assert granted(statements, "lambda:") == []
        assert {action for action, res in granted(statements, "") if res == "*"} == {
            "xray:PutTraceSegments",
            "xray:PutTelemetryRecords",
        }


def test_no_role_uses_an_aws_managed_policy_and_every_wildcard_is_logs_or_xray(default_stack):
    # Given every role and policy in the stack
    for role in default_stack.resources("AWS::IAM::Role").values():
        # When managed policies and wildcard resources are looked for
        # Then there are none beyond actions AWS only grants on "*"
        assert "ManagedPolicyArns" not in role["Properties"]
    for policy in default_stack.resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            assert all("*" not in action for action in actions(statement))
            if "*" in resources(statement):
                assert all(action.split(":")[0] in ("xray", "logs") for action in actions(statement))


def test_the_signing_key_is_generated_at_deploy_time_before_deliver_exists(default_stack):
    # Given the secret, the key generator custom resource and the deliver function
    secret_id, secret = only(default_stack.resources("AWS::SecretsManager::Secret"))
    key_id, key = only(default_stack.resources("Custom::NotiflowSigningKey"))
    generator_id = key["Properties"]["ServiceToken"]["Fn::GetAtt"][0]
    generator = default_stack.raw["Resources"][generator_id]["Properties"]
    deliver_id, _ = function_for(default_stack, STEP_DELIVER)
    # When they are read
    # Then the generator writes into exactly that secret, from inline code, and deliver waits for it
    assert key["Properties"]["SecretId"] == {"Ref": secret_id}
    assert "def generate_signing_key" in generator["Code"]["ZipFile"]
    assert granted(statements_of_role(default_stack, generator["Role"]), "secretsmanager:") == [
        ("secretsmanager:PutSecretValue", {"Ref": secret_id})
    ]
    assert key_id in default_stack.raw["Resources"][deliver_id]["DependsOn"]
    assert "SecretString" not in secret["Properties"]


def test_outputs_name_the_queue_urls_state_machine_and_table(default_stack):
    # Given the synthesized outputs
    outputs = default_stack.raw["Outputs"]
    # When they are read
    # Then a deployer finds where to send and where to look
    state_machine_id, _ = only(default_stack.resources("AWS::StepFunctions::StateMachine"))
    queue_ids = {res["Properties"]["QueueName"]: lid for lid, res in default_stack.resources("AWS::SQS::Queue").items()}
    assert outputs["QueueUrl"]["Value"] == {"Ref": queue_ids[DEFAULT_QUEUE_NAME]}
    assert outputs["DeadLetterQueueUrl"]["Value"] == {"Ref": queue_ids[DEFAULT_DLQ_NAME]}
    assert outputs["StateMachineArn"]["Value"] == {"Ref": state_machine_id}
    assert outputs["TableName"]["Value"] == {"Ref": table_id(default_stack)}
    assert "AlarmTopicArn" not in outputs


def test_alarms_watch_failed_runs_the_dlq_and_the_lambdas(default_stack):
    # Given the default stack (no alarm email)
    alarms = list(default_stack.resources("AWS::CloudWatch::Alarm").values())
    _, machine = only(default_stack.resources("AWS::StepFunctions::StateMachine"))
    dlq_id = next(
        lid
        for lid, res in default_stack.resources("AWS::SQS::Queue").items()
        if res["Properties"]["QueueName"] == DEFAULT_DLQ_NAME
    )

    def watched(alarm: dict[str, Any]) -> list[tuple[str, str, Any]]:
        props = alarm["Properties"]
        metrics = [props] + [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]
        return [(m["Namespace"], m["MetricName"], m["Dimensions"][0]["Value"]) for m in metrics if "MetricName" in m]

    # When the watched metrics are collected
    single = [watched(a)[0] for a in alarms if "Metrics" not in a["Properties"]]
    rates = [sorted(watched(a)) for a in alarms if "Metrics" in a["Properties"]]
    # Then failed runs, the DLQ, ingest and deduplicate errors alarm at one; validate and deliver on a high rate
    assert sorted(single, key=repr) == sorted(
        [
            ("AWS/States", "ExecutionsFailed", {"Ref": next(iter(default_stack.resources(machine["Type"])))}),
            ("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"Fn::GetAtt": [dlq_id, "QueueName"]}),
            ("AWS/Lambda", "Errors", {"Ref": function_for(default_stack, STEP_INGEST)[0]}),
            ("AWS/Lambda", "Errors", {"Ref": function_for(default_stack, STEP_DEDUPLICATE)[0]}),
        ],
        key=repr,
    )
    assert sorted(rates, key=repr) == sorted(
        [
            [
                ("AWS/Lambda", "Errors", {"Ref": function_for(default_stack, step)[0]}),
                ("AWS/Lambda", "Invocations", {"Ref": function_for(default_stack, step)[0]}),
            ]
            for step in (STEP_VALIDATE, STEP_DELIVER)
        ],
        key=repr,
    )
    assert all(a["Properties"]["Threshold"] >= 1 for a in alarms)
    assert all("AlarmActions" not in a["Properties"] for a in alarms)
    assert {a["Properties"]["AlarmName"] for a in alarms} == {
        "notiflow-failed-executions",
        "notiflow-dead-letter-queue-not-empty",
        "notiflow-ingest-errors",
        "notiflow-deduplicate-errors",
        "notiflow-validate-error-rate",
        "notiflow-deliver-error-rate",
    }


def test_an_alarm_email_creates_an_ssl_only_topic_that_every_alarm_notifies(custom_stack):
    # Given a stack synthesized with an alarm email
    topic_id, _ = only(custom_stack.resources("AWS::SNS::Topic"))
    # When the alarms and the subscription are read
    # Then every alarm (and its recovery) goes to the topic, which mails the on-call address
    custom_stack.template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "oncall@example.com", "TopicArn": {"Ref": topic_id}}
    )
    for alarm in custom_stack.resources("AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
        assert alarm["Properties"]["OKActions"] == [{"Ref": topic_id}]
    assert custom_stack.raw["Outputs"]["AlarmTopicArn"]["Value"] == {"Ref": topic_id}
    custom_stack.template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            }
        },
    )


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (EnvVar.ALLOW_PRIVATE_TARGETS, "true"),
        (EnvVar.ALLOWED_TARGET_HOSTS, "hooks.example.com,api.example.org"),
        (EnvVar.READ_TIMEOUT_SECONDS, "20"),
    ],
)
def test_context_reaches_the_lambda_environment(custom_stack, key, expected):
    # Given a stack synthesized with a custom target policy and read timeout
    # When the deliver function's environment is read
    env = function_for(custom_stack, STEP_DELIVER)[1]["Properties"]["Environment"]["Variables"]
    # Then the context value is what the Lambda will parse
    assert env[key] == expected


def test_context_reaches_the_queue_the_mapping_and_the_log_groups(custom_stack):
    # Given a stack synthesized with maxReceiveCount 3, batch size 5 and 90 days of logs
    queue = next(
        res
        for res in custom_stack.resources("AWS::SQS::Queue").values()
        if res["Properties"]["QueueName"] == DEFAULT_QUEUE_NAME
    )
    _, mapping = only(custom_stack.resources("AWS::Lambda::EventSourceMapping"))
    # When the properties are read
    # Then each setting landed where it acts
    assert queue["Properties"]["RedrivePolicy"]["maxReceiveCount"] == 3
    assert mapping["Properties"]["BatchSize"] == 5
    assert {g["Properties"]["RetentionInDays"] for g in custom_stack.resources("AWS::Logs::LogGroup").values()} == {90}
