"""Template assertions on the synthesized Notiflow stack: resources, properties, wiring and least privilege."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match

from infrastructure.config import NotiflowConfig
from infrastructure.spec import ARCHITECTURE, RUNTIME
from lambdas.shared.constants import (
    DEFAULT_DLQ_NAME,
    DEFAULT_FAST_PATH_STATE_MACHINE_NAME,
    DEFAULT_HOST_LEASES_TABLE_NAME,
    DEFAULT_QUEUE_NAME,
    DEFAULT_STATE_MACHINE_NAME,
    DEFAULT_TABLE_NAME,
    HOST_LEASES_PARTITION_KEY,
    STEP_DEDUPLICATE,
    STEP_DELIVER,
    STEP_FAILURE_GATE,
    STEP_INGEST,
    STEP_RECONCILE,
    STEP_VALIDATE,
    TABLE_PARTITION_KEY,
    TABLE_TTL_ATTRIBUTE,
    WORKFLOW_STEPS,
    EnvVar,
    handler_path,
)
from tests.infrastructure.conftest import EXISTING_TOPIC_ARN

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


def named(stack, resource_type: str, name_property: str, name: str) -> tuple[str, dict[str, Any]]:
    return only(
        {lid: res for lid, res in stack.resources(resource_type).items() if res["Properties"][name_property] == name}
    )


def table_id(stack) -> str:
    """The notifications table."""
    return named(stack, "AWS::DynamoDB::Table", "TableName", DEFAULT_TABLE_NAME)[0]


def leases_id(stack) -> str:
    """The per-host delivery slots."""
    return named(stack, "AWS::DynamoDB::Table", "TableName", DEFAULT_HOST_LEASES_TABLE_NAME)[0]


def standard_machine(stack) -> tuple[str, dict[str, Any]]:
    return named(stack, "AWS::StepFunctions::StateMachine", "StateMachineName", DEFAULT_STATE_MACHINE_NAME)


def fast_path_machine(stack) -> tuple[str, dict[str, Any]]:
    return named(stack, "AWS::StepFunctions::StateMachine", "StateMachineName", DEFAULT_FAST_PATH_STATE_MACHINE_NAME)


def test_the_stack_holds_exactly_the_expected_resources(default_stack):
    # Given the default configuration
    # When the stack is synthesized
    # Then it holds five step functions, the reconciler and the key generator, three queues, two tables
    # (notifications, host slots), two workflows (Standard and the Express fast path)
    counts = {
        "AWS::Lambda::Function": 7,
        "AWS::SQS::Queue": 3,
        "AWS::SQS::QueuePolicy": 3,
        "AWS::Events::Rule": 1,
        "AWS::DynamoDB::Table": 2,
        "AWS::StepFunctions::StateMachine": 2,
        "AWS::SecretsManager::Secret": 1,
        "Custom::NotiflowSigningKey": 1,
        "AWS::Lambda::EventSourceMapping": 1,
        "AWS::CloudWatch::Alarm": 20,
        "AWS::CloudWatch::Dashboard": 1,
        "AWS::SNS::Topic": 0,
        "AWS::IAM::Role": 9,
        "AWS::Logs::LogGroup": 9,
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
    # (six times ingest's timeout, which in fast-path mode covers a whole synchronous Express run)
    assert (
        queue["Properties"]["VisibilityTimeout"]
        == 6 * function_for(default_stack, STEP_INGEST)[1]["Properties"]["Timeout"]
    )
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
    # And at most 20 ingest invocations run at once (the trigger's maximum concurrency, the local poller's too)
    assert props["ScalingConfig"] == {"MaximumConcurrency": 20}
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
    # Given the step functions, the table, the fast path state machine and the signing secret
    table = table_id(default_stack)
    fast_path_id, _ = fast_path_machine(default_stack)
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
        assert env[EnvVar.DELIVERY_MODE] == "fast-path"
        assert env[EnvVar.HOST_MAX_IN_FLIGHT] == "10"
        # And only ingest learns the workflow it starts (the fast path, by default), only deliver the
        # signing secret and the host slots
        assert (EnvVar.FAST_PATH_STATE_MACHINE_ARN in env) == (step == STEP_INGEST)
        assert EnvVar.STATE_MACHINE_ARN not in env
        assert (EnvVar.SIGNING_SECRET_ID in env) == (step == STEP_DELIVER)
        assert (EnvVar.HOST_LEASES_TABLE_NAME in env) == (step == STEP_DELIVER)
    ingest_env = function_for(default_stack, STEP_INGEST)[1]["Properties"]["Environment"]["Variables"]
    deliver_env = function_for(default_stack, STEP_DELIVER)[1]["Properties"]["Environment"]["Variables"]
    assert ingest_env[EnvVar.FAST_PATH_STATE_MACHINE_ARN] == {"Ref": fast_path_id}
    assert deliver_env[EnvVar.SIGNING_SECRET_ID] == {"Ref": secret_id}
    assert deliver_env[EnvVar.HOST_LEASES_TABLE_NAME] == {"Ref": leases_id(default_stack)}


def test_the_deliver_timeout_is_one_attempt_plus_margin(default_stack, custom_stack):
    # Given the default and a custom read timeout
    # When the deliver function's timeout is read
    # Then it follows the configured HTTP timeouts
    for stack, context in ((default_stack, {}), (custom_stack, {"readTimeoutSeconds": "20"})):
        expected = NotiflowConfig.from_context(context.get).deliver_timeout_seconds
        assert function_for(stack, STEP_DELIVER)[1]["Properties"]["Timeout"] == expected


def test_the_table_is_on_demand_recoverable_encrypted_and_expires_records(default_stack):
    # Given the synthesized table
    table = default_stack.raw["Resources"][table_id(default_stack)]
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
        assert stack.raw["Resources"][table_id(stack)]["DeletionPolicy"] == policy
        assert only(stack.resources("AWS::SecretsManager::Secret"))[1]["DeletionPolicy"] == policy
        # And the host slots (one attempt long at most) are never kept
        assert stack.raw["Resources"][leases_id(stack)]["DeletionPolicy"] == "Delete"


def test_the_host_slots_table_is_keyed_by_host_on_demand_and_expires_idle_hosts(default_stack):
    props = default_stack.raw["Resources"][leases_id(default_stack)]["Properties"]
    assert props["KeySchema"] == [{"AttributeName": HOST_LEASES_PARTITION_KEY, "KeyType": "HASH"}]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": TABLE_TTL_ATTRIBUTE, "Enabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True


def test_the_state_machine_is_standard_traced_and_logs_all_events_without_data(default_stack):
    # Given the synthesized Standard state machine and its log group
    _, machine = standard_machine(default_stack)
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


@pytest.mark.parametrize(("stack_name", "level"), [("default_stack", "ERROR"), ("custom_stack", "ALL")])
def test_the_fast_path_is_express_traced_and_logs_at_its_configured_level_without_data(stack_name, level, request):
    # Given the Express machine of a stack (default level ERROR; the custom stack asks for ALL)
    stack = request.getfixturevalue(stack_name)
    _, machine = fast_path_machine(stack)
    props = machine["Properties"]
    # When its properties are read
    # Then it is Express, traced, and keeps failed runs findable without logging notification content
    assert props["StateMachineType"] == "EXPRESS"
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == level
    assert props["LoggingConfiguration"]["IncludeExecutionData"] is False


def test_the_fast_path_may_invoke_its_three_steps_update_its_table_and_start_only_the_standard_run(default_stack):
    # Given the Express machine role's statements
    standard_id, _ = standard_machine(default_stack)
    _, machine = fast_path_machine(default_stack)
    statements = statements_of_role(default_stack, machine["Properties"]["RoleArn"])
    # When its grants are collected
    steps = [arn_of(function_for(default_stack, step)[0]) for step in (STEP_VALIDATE, STEP_DEDUPLICATE, STEP_DELIVER)]
    # Then it invokes validate, deduplicate and deliver (no failure gate), updates the table, starts Standard runs
    assert granted(statements, "lambda:") == sorted((("lambda:InvokeFunction", arn) for arn in steps), key=repr)
    assert granted(statements, "dynamodb:") == [("dynamodb:UpdateItem", arn_of(table_id(default_stack)))]
    assert granted(statements, "states:") == [("states:StartExecution", {"Ref": standard_id})]


def test_the_state_machine_may_invoke_exactly_its_four_functions_and_update_exactly_its_table(default_stack):
    # Given the state machine role's statements
    _, machine = standard_machine(default_stack)
    statements = statements_of_role(default_stack, machine["Properties"]["RoleArn"])
    # When the Lambda and DynamoDB grants are collected
    step_arns = [arn_of(function_for(default_stack, step)[0]) for step in WORKFLOW_STEPS]
    # Then it invokes only the four workflow functions and only updates items in the table
    assert granted(statements, "lambda:") == sorted((("lambda:InvokeFunction", arn) for arn in step_arns), key=repr)
    assert granted(statements, "dynamodb:") == [("dynamodb:UpdateItem", arn_of(table_id(default_stack)))]
    assert granted(statements, "states:") == []
    assert granted(statements, "secretsmanager:") == []


@pytest.mark.parametrize("stack_name", ["default_stack", "custom_stack"])
def test_each_function_role_grants_only_what_its_step_touches(stack_name, request):
    # Given every step's role statements, in fast-path mode (default) and standard mode (custom)
    stack = request.getfixturevalue(stack_name)
    table = arn_of(table_id(stack))
    leases = arn_of(leases_id(stack))
    standard_id, _ = standard_machine(stack)
    fast_path_id, _ = fast_path_machine(stack)
    secret_id, _ = only(stack.resources("AWS::SecretsManager::Secret"))
    start = (
        ("states:StartSyncExecution", {"Ref": fast_path_id})
        if stack is request.getfixturevalue("default_stack")
        else ("states:StartExecution", {"Ref": standard_id})
    )
    expected = {
        STEP_INGEST: {"states:": [start], "dynamodb:": []},
        STEP_VALIDATE: {"dynamodb:": [], "states:": []},
        STEP_DEDUPLICATE: {"dynamodb:": [("dynamodb:GetItem", table), ("dynamodb:UpdateItem", table)]},
        STEP_DELIVER: {
            "dynamodb:": [("dynamodb:GetItem", table), ("dynamodb:UpdateItem", leases), ("dynamodb:UpdateItem", table)],
            "secretsmanager:": [("secretsmanager:GetSecretValue", {"Ref": secret_id})],
            "states:": [],
        },
        STEP_FAILURE_GATE: {"dynamodb:": [], "states:": [], "secretsmanager:": []},
    }
    for step, grants in expected.items():
        _, function = function_for(stack, step)
        statements = statements_of_role(stack, function["Properties"]["Role"])
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
    state_machine_id, _ = standard_machine(default_stack)
    queue_ids = {res["Properties"]["QueueName"]: lid for lid, res in default_stack.resources("AWS::SQS::Queue").items()}
    assert outputs["QueueUrl"]["Value"] == {"Ref": queue_ids[DEFAULT_QUEUE_NAME]}
    assert outputs["DeadLetterQueueUrl"]["Value"] == {"Ref": queue_ids[DEFAULT_DLQ_NAME]}
    assert outputs["StateMachineArn"]["Value"] == {"Ref": state_machine_id}
    assert outputs["FastPathStateMachineArn"]["Value"] == {"Ref": fast_path_machine(default_stack)[0]}
    assert outputs["DeliveryMode"]["Value"] == "fast-path"
    assert outputs["TableName"]["Value"] == {"Ref": table_id(default_stack)}
    assert outputs["HostLeasesTableName"]["Value"] == {"Ref": leases_id(default_stack)}
    assert "AlarmTopicArn" not in outputs


def watched(alarm: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(namespace, metric, first dimension value) of every metric an alarm reads."""
    props = alarm["Properties"]
    metrics = [props] + [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]
    return [(m["Namespace"], m["MetricName"], m["Dimensions"][0]["Value"]) for m in metrics if "MetricName" in m]


def test_alarms_watch_runs_of_both_machines_the_queues_and_every_lambda(default_stack):
    # Given the default stack (no alarm email, no topic)
    alarms = list(default_stack.resources("AWS::CloudWatch::Alarm").values())
    standard_id, _ = standard_machine(default_stack)
    fast_path_id, _ = fast_path_machine(default_stack)
    queues = {res["Properties"]["QueueName"]: lid for lid, res in default_stack.resources("AWS::SQS::Queue").items()}
    dlq_id, queue_id = queues[DEFAULT_DLQ_NAME], queues[DEFAULT_QUEUE_NAME]

    # When the watched metrics are collected
    single = [watched(a)[0] for a in alarms if "Metrics" not in a["Properties"]]
    rates = [sorted(watched(a)) for a in alarms if "Metrics" in a["Properties"]]
    # Then failed, timed-out and aborted runs of both machines (the Express one from its metrics), the queue's
    # age, the DLQ, ingest and deduplicate errors and every function's throttles alarm; validate and deliver on
    # a high error rate
    machines = [
        ("AWS/States", metric, {"Ref": machine})
        for machine in (standard_id, fast_path_id)
        for metric in ("ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted")
    ]
    throttles = [
        ("AWS/Lambda", "Throttles", {"Ref": function_for(default_stack, step)[0]})
        for step in (*ALL_STEPS, STEP_RECONCILE)
    ]
    reconcile_dlq = queues["notiflow-reconcile-dlq"]
    assert sorted(single, key=repr) == sorted(
        [
            *machines,
            *throttles,
            ("AWS/SQS", "ApproximateAgeOfOldestMessage", {"Fn::GetAtt": [queue_id, "QueueName"]}),
            ("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"Fn::GetAtt": [dlq_id, "QueueName"]}),
            ("AWS/Lambda", "Errors", {"Ref": function_for(default_stack, STEP_INGEST)[0]}),
            ("AWS/Lambda", "Errors", {"Ref": function_for(default_stack, STEP_DEDUPLICATE)[0]}),
            ("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"Fn::GetAtt": [reconcile_dlq, "QueueName"]}),
            ("AWS/Lambda", "Errors", {"Ref": function_for(default_stack, STEP_RECONCILE)[0]}),
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
        "notiflow-timed-out-executions",
        "notiflow-aborted-executions",
        "notiflow-fast-path-failed-executions",
        "notiflow-fast-path-timed-out-executions",
        "notiflow-fast-path-aborted-executions",
        "notiflow-intake-queue-age",
        "notiflow-dead-letter-queue-not-empty",
        "notiflow-ingest-errors",
        "notiflow-deduplicate-errors",
        "notiflow-reconciler-dead-letter-queue-not-empty",
        "notiflow-reconciler-errors",
        "notiflow-validate-error-rate",
        "notiflow-deliver-error-rate",
        *(f"notiflow-{step.replace('_', '-')}-throttles" for step in (*ALL_STEPS, STEP_RECONCILE)),
    }


def test_the_queue_age_alarm_fires_past_two_visibility_timeouts(default_stack, custom_stack):
    # Given the default (fast-path) and the custom (standard mode) stacks, whose visibility timeouts differ
    for stack in (default_stack, custom_stack):
        queue = next(
            res
            for res in stack.resources("AWS::SQS::Queue").values()
            if res["Properties"]["QueueName"] == DEFAULT_QUEUE_NAME
        )
        # When the queue-age alarm is read
        (alarm,) = [
            a
            for a in stack.resources("AWS::CloudWatch::Alarm").values()
            if a["Properties"].get("MetricName") == "ApproximateAgeOfOldestMessage"
        ]
        # Then it fires once the oldest message waited longer than two of its queue's visibility timeouts
        assert alarm["Properties"]["Threshold"] == 2 * queue["Properties"]["VisibilityTimeout"]
        assert alarm["Properties"]["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["Properties"]["Statistic"] == "Maximum"


def test_an_alarm_email_creates_an_ssl_only_topic_and_every_alarm_notifies_it_and_the_existing_topic(custom_stack):
    # Given a stack synthesized with an alarm email and an existing topic's ARN
    topic_id, _ = only(custom_stack.resources("AWS::SNS::Topic"))
    # When the alarms and the subscription are read
    # Then every alarm (and its recovery) goes to the new topic, which mails the on-call address, and to the
    # existing topic
    custom_stack.template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "oncall@example.com", "TopicArn": {"Ref": topic_id}}
    )
    alarms = custom_stack.resources("AWS::CloudWatch::Alarm").values()
    assert len(alarms) == 20
    for alarm in alarms:
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}, EXISTING_TOPIC_ARN]
        assert alarm["Properties"]["OKActions"] == [{"Ref": topic_id}, EXISTING_TOPIC_ARN]
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
        (EnvVar.DELIVERY_MODE, "standard"),
        (EnvVar.HOST_MAX_IN_FLIGHT, "4"),
        (EnvVar.HOST_LIMITS, "hooks.example.com=2"),
    ],
)
def test_context_reaches_the_lambda_environment(custom_stack, key, expected):
    # Given a stack synthesized with a custom target policy and read timeout
    # When the deliver function's environment is read
    env = function_for(custom_stack, STEP_DELIVER)[1]["Properties"]["Environment"]["Variables"]
    # Then the context value is what the Lambda will parse
    assert env[key] == expected


def test_context_reaches_the_queue_the_mapping_and_the_log_groups(custom_stack):
    # Given a stack synthesized with maxReceiveCount 3, batch size 5, maximum concurrency 7 and 90 days of logs
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
    assert mapping["Properties"]["ScalingConfig"] == {"MaximumConcurrency": 7}
    assert {g["Properties"]["RetentionInDays"] for g in custom_stack.resources("AWS::Logs::LogGroup").values()} == {90}
