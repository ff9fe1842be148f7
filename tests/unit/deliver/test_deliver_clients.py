"""Per-process AWS clients: built once under a lock, shared by concurrent first calls (as in the local engine)."""

from __future__ import annotations

import threading

import boto3.session
import pytest

from lambdas.deliver.handler import lambda_handler
from lambdas.shared import aws as shared_aws

THREADS = 8


@pytest.fixture
def sessions(monkeypatch):
    """Every boto3 Session built from now on, and the GetSecretValue calls made through them."""
    built: list[boto3.session.Session] = []
    secret_reads: list[str] = []
    real_session = boto3.session.Session

    class CountingSession(real_session):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)
            self.events.register(
                "provide-client-params.secrets-manager.GetSecretValue",
                lambda params, **_: secret_reads.append(params["SecretId"]),
            )

    monkeypatch.setattr(boto3.session, "Session", CountingSession)
    shared_aws.clear()
    return built, secret_reads


def run_at_once(work, count: int = THREADS) -> list:
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    return results


def test_concurrent_first_calls_build_one_session_and_one_client(aws, sessions):
    built, _ = sessions

    clients = run_at_once(lambda _: shared_aws.client("dynamodb"))

    assert len(built) == 1
    assert all(client is clients[0] for client in clients)


def test_concurrent_first_deliveries_share_one_session_and_read_the_secret_once(
    aws, sessions, receiver, load_event, lambda_context, atomic_dynamodb
):
    # Given a cold process and several deliveries starting at the same moment (signing configured)
    built, secret_reads = sessions
    events = []
    for index in range(THREADS):
        event = load_event("order_created", receiver.base_url)
        event["notification"]["notificationId"] = f"ntf-cold-{index}"
        event["executionId"] = f"{event['executionId']}-{index}"
        aws.claim(f"ntf-cold-{index}", event["executionId"])
        events.append(event)
    built.clear()  # the fixture's own table and secret setup used the default session

    # When they all run
    results = run_at_once(lambda index: lambda_handler(events[index], lambda_context))

    # Then they were all delivered and signed, through one session (DynamoDB and Secrets Manager alike),
    # and the secret was fetched once for all of them
    assert all(result["outcome"]["success"] for result in results)
    assert len(receiver.requests_for("/webhooks/orders")) == THREADS
    assert all(request.signature_valid for request in receiver.requests_for("/webhooks/orders"))
    assert len(built) == 1
    assert secret_reads == ["notiflow/unit/signing"]
