"""CDK context -> NotiflowConfig: defaults from their single homes, strict parsing, errors naming the key."""

from __future__ import annotations

import pytest

from infrastructure.config import ContextError, NotiflowConfig
from lambdas.shared.config import Settings, parse_settings
from lambdas.shared.constants import EnvVar
from workflows.definition import DELIVER_STATE, default_retry_policy, load_definition


def config_from(context: dict[str, object]) -> NotiflowConfig:
    return NotiflowConfig.from_context(context.get)


def test_defaults_come_from_the_asl_file_and_the_lambda_settings():
    # Given no context at all
    # When the config is parsed
    config = config_from({})
    # Then the ASL retry schedule is deployed untouched and the Lambdas get their own defaults
    assert config.retry_policy() is None
    assert parse_settings(config.settings_environment()) == Settings()
    assert config.alarm_email is None
    assert config.retain_data is True


def test_cli_strings_and_cdk_json_values_parse_to_the_same_config():
    # Given the same settings once as -c strings and once as JSON values from cdk.json
    as_strings = {"retryMaxAttempts": "5", "allowPrivateTargets": "true", "allowedSchemes": "https, HTTP"}
    as_json = {"retryMaxAttempts": 5, "allowPrivateTargets": True, "allowedSchemes": ["https", "http"]}
    # When both are parsed
    # Then they describe the same deployment
    assert config_from(as_strings) == config_from(as_json)
    assert config_from(as_strings).allowed_schemes == ("https", "http")


def test_a_partial_retry_override_keeps_the_other_fields_of_the_asl_schedule():
    # Given only the attempt count in the context
    config = config_from({"retryMaxAttempts": "6"})
    # When the retry policy is derived
    policy = config.retry_policy()
    # Then everything else is what the ASL file says
    assert policy == default_retry_policy().with_overrides(max_attempts=6)
    assert policy.interval_seconds == default_retry_policy().interval_seconds


def test_the_lambda_environment_uses_the_shared_env_var_names():
    # Given private targets allowed and two hosts
    config = config_from({"allowPrivateTargets": "yes", "allowedTargetHosts": "a.example.com,b.example.com"})
    # When the static Lambda environment is rendered
    env = config.settings_environment()
    # Then it is keyed by lambdas.shared.constants.EnvVar and parses back to the same policy
    assert env[EnvVar.ALLOW_PRIVATE_TARGETS] == "true"
    assert env[EnvVar.ALLOWED_SCHEMES] == "https"
    assert env[EnvVar.POWERTOOLS_SERVICE_NAME] == "notiflow"
    assert env[EnvVar.POWERTOOLS_METRICS_NAMESPACE] == "Notiflow"
    settings = parse_settings(env)
    assert settings.allowed_target_hosts == ("a.example.com", "b.example.com")
    assert settings.allow_private_targets is True


def test_the_deliver_timeout_covers_one_attempt_and_stays_below_the_state_timeout():
    # Given the default connect and read timeouts
    config = config_from({})
    # When the deliver Lambda timeout is derived
    # Then it exceeds one full HTTP attempt and the Deliver state outlives it
    assert config.deliver_timeout_seconds > config.connect_timeout_seconds + config.read_timeout_seconds
    assert config.deliver_timeout_seconds < load_definition()["States"][DELIVER_STATE]["TimeoutSeconds"]


@pytest.mark.parametrize(
    ("context", "named"),
    [
        ({"readTimeoutSeconds": "110"}, "TimeoutSeconds"),
        ({"readTimeoutSeconds": "0"}, "readTimeoutSeconds"),
        ({"connectTimeoutSeconds": "soon"}, "connectTimeoutSeconds"),
        ({"retryBackoffRate": "0.5"}, "retryBackoffRate"),
        ({"retryIntervalSeconds": "60", "retryMaxDelaySeconds": "30"}, "retryMaxDelaySeconds"),
        ({"allowedSchemes": "ftp"}, "allowedSchemes"),
        ({"allowPrivateTargets": "maybe"}, "allowPrivateTargets"),
        ({"logRetentionDays": "31"}, "logRetentionDays"),
        ({"ingestBatchSize": "11"}, "ingestBatchSize"),
        ({"maxReceiveCount": "0"}, "maxReceiveCount"),
        ({"ingestMaxConcurrency": "1"}, "ingestMaxConcurrency"),
        ({"ingestMaxConcurrency": "1001"}, "ingestMaxConcurrency"),
        ({"alarmEmail": "not-an-address"}, "alarmEmail"),
        ({"alarmTopicArn": "oncall"}, "alarmTopicArn"),
        ({"alarmTopicArn": "arn:aws:sqs:us-east-1:123456789012:q"}, "alarmTopicArn"),
        ({"logLevel": "LOUD"}, "logLevel"),
        ({"allowLoopbackTargets": "perhaps"}, "allowLoopbackTargets"),
    ],
)
def test_an_invalid_context_value_fails_naming_the_key(context, named):
    # Given one bad context value
    # When the config is parsed
    # Then synthesis stops with a message that names what to fix
    with pytest.raises(ContextError, match=named):
        config_from(context)


def test_a_blank_alarm_email_means_no_topic():
    # Given an empty alarm email, as `-c alarmEmail=` produces
    # When the config is parsed
    # Then there is no email to notify
    assert config_from({"alarmEmail": " "}).alarm_email is None


def test_the_retired_powertools_layer_key_is_refused():
    # Given a deployment that still passes the Powertools layer it used before Powertools was bundled
    # When the config is parsed with the keys that were given
    # Then it fails naming the key, instead of silently deploying without the layer it asked for
    context = {"powertoolsLayerArn": "arn:aws:lambda:eu-west-1:017000801446:layer:Powertools:27"}
    with pytest.raises(ContextError, match="unknown key powertoolsLayerArn"):
        NotiflowConfig.from_context(context.get, context.keys())


def test_a_misspelt_key_fails_instead_of_deploying_the_default():
    # Given a typo in a Notiflow key next to CDK's own context keys
    context = {"retryMaxAttempt": "5", "@aws-cdk/core:checkSecretUsage": True, "cli-telemetry": False}
    # When the config is parsed with the list of keys that were given
    # Then the typo is named with the key it probably meant, and CDK's keys are left alone
    with pytest.raises(ContextError, match=r"retryMaxAttempt \(did you mean retryMaxAttempts\?\)"):
        NotiflowConfig.from_context(context.get, context.keys())
    cdk_only = {"@aws-cdk/core:checkSecretUsage": True, "aws:cdk:bundling-stacks": [], "cli-telemetry": False}
    assert NotiflowConfig.from_context(cdk_only.get, cdk_only.keys()) == config_from({})
