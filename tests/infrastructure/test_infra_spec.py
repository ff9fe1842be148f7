"""One spec, two platforms: the synthesized template and a running embedded stack build the same thing.

The embedded stack runs with the production target policy and no overrides, i.e. the deployed
defaults, so every difference found here is drift between how the CDK app and the local stack
apply infrastructure/spec.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from infrastructure.config import NotiflowConfig
from infrastructure.spec import (
    TRACER_CAPTURE_ERROR,
    TRACER_CAPTURE_RESPONSE,
    Names,
    Ref,
    TargetPolicy,
    build_spec,
)
from lambdas.shared.config import parse_settings
from lambdas.shared.constants import (
    DEFAULT_DLQ_NAME,
    DEFAULT_QUEUE_NAME,
    DEFAULT_STATE_MACHINE_NAME,
    DEFAULT_TABLE_NAME,
    STEP_DELIVER,
    STEP_INGEST,
    DeliveryMode,
    EnvVar,
)
from notiflow.local.stack import EmbeddedStack, StackSettings
from workflows.definition import default_fast_retry_policy, fast_path_timeout_seconds

ARN = "<arn>"


@pytest.fixture(scope="module")
def local() -> Iterator[EmbeddedStack]:
    # The local default delivery mode is the deployed one
    settings = StackSettings(target_policy=TargetPolicy.PRODUCTION, start_poller=False)
    with EmbeddedStack(settings) as stack:
        yield stack


def functions_by_name(stack) -> dict[str, dict[str, Any]]:
    return {
        res["Properties"]["FunctionName"]: res["Properties"]
        for res in stack.resources("AWS::Lambda::Function").values()
        if "FunctionName" in res["Properties"]
    }


def resolve_template_value(stack, value: Any) -> Any:
    """A literal stays; a Ref to the table becomes its name; any other reference is an ARN."""
    if isinstance(value, str):
        return value
    ref = value.get("Ref") if isinstance(value, dict) else None
    resource = stack.raw["Resources"].get(ref, {}) if ref else {}
    if resource.get("Type") == "AWS::DynamoDB::Table":
        return resource["Properties"]["TableName"]
    return ARN


def queues_by_name(stack) -> dict[str, dict[str, Any]]:
    return {res["Properties"]["QueueName"]: res["Properties"] for res in stack.resources("AWS::SQS::Queue").values()}


def test_functions_run_the_same_runtime_memory_timeout_and_handler(default_stack, local):
    # Given the synthesized functions and the local stack's functions, by physical name
    deployed = functions_by_name(default_stack)
    lambdas = local.client("lambda")
    for step, name in local.function_names.items():
        # When both configurations are read
        configuration = lambdas.get_function_configuration(FunctionName=name)
        template = deployed[name]
        # Then they agree on everything the spec decides
        assert (configuration["Runtime"], template["Runtime"]) == (local.spec.function(step).runtime,) * 2
        assert configuration["Architectures"] == template["Architectures"]
        assert configuration["MemorySize"] == template["MemorySize"]
        assert configuration["Timeout"] == template["Timeout"], step
        assert configuration["Handler"] == template["Handler"]
        assert configuration["Description"] == template["Description"]


def test_function_environments_agree_except_for_resource_arns(default_stack, local):
    # Given each function's environment on both platforms, ARN values masked
    deployed = functions_by_name(default_stack)
    lambdas = local.client("lambda")
    arn_keys = {EnvVar.STATE_MACHINE_ARN, EnvVar.FAST_PATH_STATE_MACHINE_ARN, EnvVar.SIGNING_SECRET_ID}
    for name in local.function_names.values():
        template_env = {
            key: resolve_template_value(default_stack, value)
            for key, value in deployed[name]["Environment"]["Variables"].items()
        }
        local_env = lambdas.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
        # When the resource-valued variables (only some functions get them on AWS) are set aside
        ref_keys = arn_keys | {EnvVar.HOST_LEASES_TABLE_NAME}
        plain_template = {k: v for k, v in template_env.items() if k not in ref_keys}
        plain_local = {k: v for k, v in local_env.items() if k not in ref_keys}
        # Then every other variable has the same value; the resources a function gets on AWS it gets locally too
        assert plain_local == plain_template, name
        assert set(template_env) & ref_keys <= set(local_env)
        assert all(template_env[key] == ARN for key in set(template_env) & arn_keys)
        if EnvVar.HOST_LEASES_TABLE_NAME in template_env:
            assert template_env[EnvVar.HOST_LEASES_TABLE_NAME] == local_env[EnvVar.HOST_LEASES_TABLE_NAME]


def test_queues_have_the_same_names_and_attributes(default_stack, local):
    # Given the two queues on both platforms
    deployed = queues_by_name(default_stack)
    sqs = local.client("sqs")
    queue = sqs.get_queue_attributes(QueueUrl=local.queue_url, AttributeNames=["All"])["Attributes"]
    dlq = sqs.get_queue_attributes(QueueUrl=local.dlq_url, AttributeNames=["All"])["Attributes"]
    # When their attributes are compared
    template_queue = deployed[local.spec.intake.queue_name]
    template_dlq = deployed[local.spec.intake.dead_letter_queue_name]
    # Then names, visibility, retention and the receive count before the DLQ agree
    assert local.queue_url.rsplit("/", 1)[1] == template_queue["QueueName"]
    assert local.dlq_url.rsplit("/", 1)[1] == template_dlq["QueueName"]
    assert int(queue["VisibilityTimeout"]) == template_queue["VisibilityTimeout"]
    assert int(queue["MessageRetentionPeriod"]) == template_queue["MessageRetentionPeriod"]
    assert int(dlq["MessageRetentionPeriod"]) == template_dlq["MessageRetentionPeriod"]
    assert json.loads(queue["RedrivePolicy"])["maxReceiveCount"] == template_queue["RedrivePolicy"]["maxReceiveCount"]


def test_ingest_consumes_in_batches_of_the_same_size(default_stack, local):
    # Given the deployed event source mapping and the local SQS poller feeding ingest
    mapping = next(iter(default_stack.resources("AWS::Lambda::EventSourceMapping").values()))["Properties"]
    poller = local.new_poller()
    # When their batch sizes are read
    # Then they agree
    assert poller.batch_size == mapping["BatchSize"] == local.spec.intake.batch_size


def test_tables_state_machines_secret_and_log_groups_share_their_names(default_stack, local):
    # Given the named resources of the template
    tables = {
        res["Properties"]["TableName"]: res["Properties"]
        for res in default_stack.resources("AWS::DynamoDB::Table").values()
    }
    machines = {
        res["Properties"]["StateMachineName"]: res["Properties"]
        for res in default_stack.resources("AWS::StepFunctions::StateMachine").values()
    }
    secret = next(iter(default_stack.resources("AWS::SecretsManager::Secret").values()))["Properties"]
    log_groups = {
        res["Properties"].get("LogGroupName") for res in default_stack.resources("AWS::Logs::LogGroup").values()
    }
    # When the local stack's resources are described
    dynamodb, sfn = local.client("dynamodb"), local.client("stepfunctions")
    described_secret = local.client("secretsmanager").describe_secret(SecretId=local.signing_secret_arn)
    # Then both carry the spec's names: the notifications table, the host slots, both workflows
    assert set(tables) == {DEFAULT_TABLE_NAME, local.host_leases_table_name}
    for name, table in tables.items():
        described_table = dynamodb.describe_table(TableName=name)["Table"]
        assert described_table["KeySchema"] == table["KeySchema"]
    assert set(machines) == {DEFAULT_STATE_MACHINE_NAME, local.fast_path_state_machine_name}
    for arn in (local.state_machine_arn, local.fast_path_state_machine_arn):
        described_machine = sfn.describe_state_machine(stateMachineArn=arn)
        assert described_machine["type"] == machines[described_machine["name"]]["StateMachineType"]
    assert described_secret["Name"] == secret["Name"] == local.spec.names.signing_secret
    # And the log groups are the spec's (locally the functions log to a file instead)
    assert {local.spec.function(step).log_group for step in local.function_names} <= log_groups
    assert {local.spec.state_machine.log_group, local.spec.fast_path.log_group} <= log_groups


def test_every_deployed_function_keeps_results_and_errors_out_of_traces(default_stack, custom_stack):
    # Given every function of both synthesized stacks
    for stack in (default_stack, custom_stack):
        for logical_id, function in stack.resources("AWS::Lambda::Function").items():
            props = function["Properties"]
            env = props.get("Environment", {}).get("Variables", {})
            # When its environment and tracing are read
            if props["Handler"].startswith("lambdas."):
                # Then a Notiflow step's Tracer records neither the handler's return value nor exception messages
                assert env.get(TRACER_CAPTURE_RESPONSE) == "false", logical_id
                assert env.get(TRACER_CAPTURE_ERROR) == "false", logical_id
            else:
                # And the signing key generator (no Powertools) is not traced at all
                assert "TracingConfig" not in props, logical_id


def test_names_follow_one_prefix_so_a_stage_can_be_added():
    # Given the default names and names under another prefix
    default, staged = Names(), Names(prefix="notiflow-prod")
    # When they are read
    # Then the defaults are the shared constants and another prefix renames every resource alike
    assert (default.table, default.queue, default.dead_letter_queue, default.state_machine) == (
        DEFAULT_TABLE_NAME,
        DEFAULT_QUEUE_NAME,
        DEFAULT_DLQ_NAME,
        DEFAULT_STATE_MACHINE_NAME,
    )
    assert staged.table == "notiflow-prod-notifications"
    assert staged.dead_letter_queue == "notiflow-prod-intake-dlq"
    assert staged.function("failure_gate") == "notiflow-prod-failure-gate"
    assert staged.function_log_group(STEP_DELIVER) == "/aws/lambda/notiflow-prod-deliver"
    assert staged.state_machine_log_group == "/aws/vendedlogs/states/notiflow-prod-delivery"
    built = build_spec(NotiflowConfig(), staged)
    assert {f.name for f in built.functions.values()} == {staged.function(step) for step in built.functions}


def test_the_spec_follows_the_config():
    # Given a config with longer HTTP timeouts, fewer receives and smaller batches
    config = NotiflowConfig(
        read_timeout_seconds=40, fast_path_retries=0, max_receive_count=2, ingest_batch_size=3, log_level="DEBUG"
    )
    # When the spec is built
    spec = build_spec(config)
    # Then the deliver timeout, the queue and every environment follow it
    assert spec.function(STEP_DELIVER).timeout_seconds == config.deliver_timeout_seconds
    assert spec.intake.max_receive_count == 2
    assert spec.intake.batch_size == 3
    assert spec.intake.visibility_timeout_seconds == 6 * spec.function(STEP_INGEST).timeout_seconds
    for function in spec.functions.values():
        assert parse_settings(function.environment).read_timeout_seconds == 40
        assert function.environment[EnvVar.POWERTOOLS_LOG_LEVEL] == "DEBUG"
    assert spec.function(STEP_INGEST).refs == {
        EnvVar.TABLE_NAME: Ref.TABLE_NAME,
        EnvVar.FAST_PATH_STATE_MACHINE_ARN: Ref.FAST_PATH_STATE_MACHINE_ARN,
    }
    assert spec.function(STEP_DELIVER).refs == {
        EnvVar.TABLE_NAME: Ref.TABLE_NAME,
        EnvVar.SIGNING_SECRET_ID: Ref.SIGNING_SECRET_ARN,
        EnvVar.HOST_LEASES_TABLE_NAME: Ref.HOST_LEASES_TABLE_NAME,
    }


def test_the_delivery_mode_decides_what_ingest_starts_and_how_long_it_waits():
    # Given both modes
    fast, standard = (build_spec(NotiflowConfig(delivery_mode=mode)) for mode in DeliveryMode)
    # When the spec is built
    # Then fast-path ingest waits for whole Express runs and its queue outlasts an Express claim's lease;
    # standard ingest only starts Standard runs
    assert fast.function(STEP_INGEST).timeout_seconds > fast_path_timeout_seconds()
    assert (
        fast.intake.visibility_timeout_seconds
        >= fast.fast_path.lease_seconds + fast.function(STEP_INGEST).timeout_seconds
    )
    assert fast.state_machine.fast_attempts == 1 + default_fast_retry_policy().max_attempts
    assert standard.function(STEP_INGEST).refs[EnvVar.STATE_MACHINE_ARN] == Ref.STATE_MACHINE_ARN
    assert EnvVar.FAST_PATH_STATE_MACHINE_ARN not in standard.function(STEP_INGEST).refs
    assert standard.state_machine.fast_attempts == 0
    assert standard.function(STEP_INGEST).timeout_seconds < fast.function(STEP_INGEST).timeout_seconds
    for spec, mode in ((fast, "fast-path"), (standard, "standard")):
        assert all(f.environment[EnvVar.DELIVERY_MODE] == mode for f in spec.functions.values())


def test_fast_path_budget_must_fit_the_express_timeout():
    # A fast path whose attempts cannot finish inside one Express run is refused; standard mode may keep them.
    with pytest.raises(ValueError, match="Express run's TimeoutSeconds"):
        NotiflowConfig(read_timeout_seconds=60)
    assert NotiflowConfig(read_timeout_seconds=60, delivery_mode="standard").delivery_mode is DeliveryMode.STANDARD
    assert NotiflowConfig(read_timeout_seconds=60, fast_path_retries=0).fast_path_budget_seconds < 120


def test_the_production_target_policy_is_the_deployed_default():
    # Given the two local target policies
    production = NotiflowConfig.model_validate(TargetPolicy.PRODUCTION.config_fields())
    local = NotiflowConfig.model_validate(TargetPolicy.LOCAL.config_fields())
    # When their settings are parsed as the Lambdas parse them
    production_settings = parse_settings(production.settings_environment())
    local_settings = parse_settings(local.settings_environment())
    # Then production is exactly what AWS runs, and local adds http without opening every private address
    assert production == NotiflowConfig()
    assert production_settings.allowed_schemes == ("https",)
    assert production_settings.allow_private_targets is False
    assert local_settings.allowed_schemes == ("http", "https")
    assert local.settings_environment()[EnvVar.ALLOWED_SCHEMES] == "http,https"
