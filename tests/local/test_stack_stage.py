"""A local stack with a stage: the deployed stage's names, a run through them, and discovery by stage."""

from __future__ import annotations

import pytest

from lambdas.shared.constants import STEP_DELIVER, STEP_INGEST, RecordStatus
from notiflow.cli import build_parser
from notiflow.local.fixtures import stack_settings_for_tests, wait_for_item
from notiflow.operate.deployment import DeploymentNotFoundError, resolve


@pytest.fixture(scope="module")
def local_stack_settings():
    return stack_settings_for_tests(stage="dev")


def test_every_resource_carries_the_stage_prefix(local_stack):
    # Given a local stack started with stage dev
    # When its resources are described
    described = local_stack.describe()
    # Then each has the name the deployed dev stage gives it
    assert described["stage"] == "dev"
    assert local_stack.table_name == "notiflow-dev-notifications"
    assert local_stack.host_leases_table_name == "notiflow-dev-host-leases"
    assert local_stack.queue_url.endswith("/notiflow-dev-intake")
    assert local_stack.dlq_url.endswith("/notiflow-dev-intake-dlq")
    assert local_stack.state_machine_arn.endswith(":stateMachine:notiflow-dev-delivery")
    assert local_stack.fast_path_state_machine_arn.endswith(":stateMachine:notiflow-dev-fast-path")
    assert local_stack.signing_secret_name == "notiflow-dev-signing-secret"
    assert local_stack.function_names[STEP_INGEST] == "notiflow-dev-ingest"
    assert local_stack.function_names[STEP_DELIVER] == "notiflow-dev-deliver"
    assert local_stack.lambda_environment()["POWERTOOLS_SERVICE_NAME"] == "notiflow-dev"
    rules = local_stack.client("events").list_rules()["Rules"]
    assert [rule["Name"] for rule in rules] == ["notiflow-dev-run-status-changes"]
    # And nothing under the unstaged names exists
    machines = local_stack.client("stepfunctions").list_state_machines()["stateMachines"]
    assert {m["name"] for m in machines} >= {"notiflow-dev-delivery", "notiflow-dev-fast-path"}
    assert not {"notiflow-delivery", "notiflow-fast-path"} & {m["name"] for m in machines}


def test_a_notification_runs_through_the_staged_resources(local_stack):
    # Given the dev stage's queue
    # When a notification that breaks the contract is sent
    local_stack.send_notification({"notificationId": "stage-1", "target": {"url": "ftp://x"}, "payload": 1})
    # Then ingest started the staged workflow, which recorded it in the staged table
    item = wait_for_item(
        local_stack.client("dynamodb"),
        "notiflow-dev-notifications",
        {"notificationId": {"S": "stage-1"}},
        lambda found: found.get("status", {}).get("S") == RecordStatus.REJECTED,
        timeout=60,
    )
    assert "notiflow-dev-" in item["executionArn"]["S"]


def test_the_operator_cli_finds_a_stage_by_its_names(local_stack):
    # Given the dev stage on the local endpoint
    # When the deployment is resolved with and without the stage
    found = resolve(local_stack.endpoint_url, stage="dev")
    # Then the stage's table, state machine and queue are found, and the unstaged ones are not there
    assert found.table_name == "notiflow-dev-notifications"
    assert found.state_machine_arn == local_stack.state_machine_arn
    assert found.queue_url == local_stack.queue_url
    with pytest.raises(DeploymentNotFoundError, match="notiflow-delivery"):
        resolve(local_stack.endpoint_url)


def test_local_up_takes_a_stage_and_refuses_one_no_deployment_could_have():
    parser = build_parser()
    assert parser.parse_args(["local", "up", "--stage", "dev"]).stage == "dev"
    assert parser.parse_args(["runs", "list", "--stage", "dev"]).stage == "dev"
    with pytest.raises(SystemExit):
        parser.parse_args(["local", "up", "--stage", "Dev_1"])


def test_on_aws_a_stage_reads_the_outputs_of_its_own_stack(monkeypatch):
    # Given no endpoint (AWS), and the stack-output reader replaced by a recorder
    from notiflow.operate import deployment

    asked: list[str] = []
    monkeypatch.delenv("NOTIFLOW_STACK_NAME", raising=False)
    monkeypatch.delenv("NOTIFLOW_ENDPOINT_URL", raising=False)
    monkeypatch.setattr(deployment, "_from_stack", lambda found, name: asked.append(name))
    # When deployments are resolved by stage, without one, and by an explicit stack name
    resolve(stage="prod")
    resolve()
    resolve(stack_name="Custom", stage="prod")
    # Then each reads the stack it names
    assert asked == ["Notiflow-prod", "Notiflow", "Custom"]
