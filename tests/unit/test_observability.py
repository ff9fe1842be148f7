"""Log lines carry the notification and the run they belong to, even with handlers running side by side."""

from __future__ import annotations

import io
import json
import threading

from lambdas.shared.observability import bind_run, logger


def test_concurrent_invocations_keep_their_own_ids() -> None:
    # Given two invocations in two threads of one process (as in the embedded stack)
    stream = io.StringIO()
    handler = logger.registered_handler
    original = handler.setStream(stream)
    a_bound, b_bound = threading.Event(), threading.Event()

    def first() -> None:
        bind_run("notification-a", "arn:exec:a")
        a_bound.set()
        b_bound.wait(5)
        logger.warning("from a")

    def second() -> None:
        a_bound.wait(5)
        bind_run("notification-b", "arn:exec:b")
        b_bound.set()
        logger.warning("from b")

    try:
        # When the second binds its ids while the first is still running
        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
    finally:
        handler.setStream(original)

    # Then each line names its own notification, run and correlation id
    lines = {line["message"]: line for line in map(json.loads, stream.getvalue().splitlines())}
    assert lines["from a"]["notificationId"] == lines["from a"]["correlation_id"] == "notification-a"
    assert lines["from a"]["executionId"] == "arn:exec:a"
    assert lines["from b"]["notificationId"] == lines["from b"]["correlation_id"] == "notification-b"
    assert lines["from b"]["executionId"] == "arn:exec:b"
