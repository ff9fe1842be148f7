"""Starting and stopping stacks: one per process, nothing left behind."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from notiflow.local import engine
from notiflow.local.fixtures import stack_settings_for_tests
from notiflow.local.stack import EmbeddedStack


def _port_accepts(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_stop_releases_the_port_and_restores_the_environment(monkeypatch):
    # Given an environment pointing somewhere else
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.delenv("MOTO_PORT", raising=False)
    threads_before = {thread.ident for thread in threading.enumerate()}

    # When a stack starts and stops
    with EmbeddedStack(stack_settings_for_tests()) as stack:
        port = stack.port
        assert os.environ["AWS_ENDPOINT_URL"] == stack.endpoint_url
        assert engine.time_scale() == (stack.settings.time_scale, stack.settings.max_wait_seconds)
        assert stack.poller is not None
        assert stack.poller.running

    # Then the environment, time scale and port are as before and no non-daemon thread remains
    assert os.environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1"
    assert "MOTO_PORT" not in os.environ
    assert engine.time_scale() == (1.0, None)
    assert not _port_accepts(port)
    leftovers = [t for t in threading.enumerate() if t.ident not in threads_before and t.is_alive() and not t.daemon]
    assert leftovers == []


def test_only_one_stack_runs_per_process():
    # Given a running stack, when a second one starts, then it is refused
    with (
        EmbeddedStack(stack_settings_for_tests(start_poller=False)),
        pytest.raises(RuntimeError, match="already running"),
    ):
        EmbeddedStack(stack_settings_for_tests(start_poller=False)).start()


def test_a_new_stack_starts_empty_on_the_same_port():
    # Given a stack that had a queue of its own
    with EmbeddedStack(stack_settings_for_tests(start_poller=False)) as first:
        first.client("sqs").create_queue(QueueName="left-behind")
        port = first.port

    # When the next one starts without a requested port
    with EmbeddedStack(stack_settings_for_tests(start_poller=False)) as second:
        queues = second.client("sqs").list_queues().get("QueueUrls", [])

        # Then it reuses the port (handler code may hold clients bound to it) and starts clean
        assert second.port == port
        assert not any(url.endswith("/left-behind") for url in queues)
