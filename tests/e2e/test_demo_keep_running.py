"""`make run ARGS=--keep-running` / `make console`: the failed demo run, seen and redriven to green.

Drives what a person does after the demo: the console lists the failed run (and agrees with
`notiflow runs list --status FAILED`), the receiver has been fixed, and the Redrive the console
offers delivers the same notification under the same execution.
"""

from __future__ import annotations

import io
import json
import threading
import urllib.parse
import urllib.request

import pytest

from notiflow.cli import main as notiflow_main
from notiflow.demo.receiver import WebhookReceiver
from notiflow.demo.scenarios import keep_serving, notification_for, scenarios
from notiflow.local.fixtures import stack_settings_for_tests, wait_for_execution
from notiflow.local.stack import EmbeddedStack
from notiflow.shared.waiting import wait_until

pytestmark = pytest.mark.slow


def http_json(url: str, method: str = "GET") -> dict:
    request = urllib.request.Request(url, method=method, headers={"X-Notiflow-Console": "1"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - 127.0.0.1 only
        return json.loads(response.read())


def test_kept_stack_shows_the_failed_run_and_redrive_turns_it_green(capsys: pytest.CaptureFixture[str]) -> None:
    (gone,) = [s for s in scenarios() if s.key == "gone"]
    with EmbeddedStack(stack_settings_for_tests()) as stack, WebhookReceiver(secret=stack.signing_secret) as rx:
        # Given the demo's permanent-4xx notification has failed
        rx.script(gone.path, gone.steps)
        stack.send_notification(notification_for(gone, rx))
        arn = stack.execution_arn(gone.notification_id)
        sfn = stack.client("stepfunctions")
        assert wait_for_execution(sfn, arn, timeout=30)["status"] == "FAILED"

        # When the demo keeps everything up
        out, stop = io.StringIO(), threading.Event()
        server = threading.Thread(
            target=keep_serving, args=(stack, rx, [gone], out), kwargs={"console_port": 0, "stop": stop}
        )
        server.start()
        try:
            printed = wait_until(out.getvalue, lambda text: "Console: " in text, timeout=10, describe="the console URL")
            url = printed.split("Console: ")[1].split()[0]

            # Then the console lists the failed run, as `notiflow runs list --status FAILED` does
            listed = http_json(url + "api/executions?status=FAILED")["executions"]
            assert [e["notificationId"] for e in listed] == [gone.notification_id]
            capsys.readouterr()
            assert (
                notiflow_main(["runs", "list", "--endpoint-url", stack.endpoint_url, "--status", "FAILED", "--json"])
                == 0
            )
            assert [r["notification_id"] for r in json.loads(capsys.readouterr().out)] == [gone.notification_id]

            # When the console's Redrive is used (the receiver was fixed by keep_serving)
            detail = http_json(url + "api/executions/" + urllib.parse.quote(arn, safe=""))
            assert detail["redrive"] == {"allowed": True, "reason": None}
            http_json(url + "api/executions/" + urllib.parse.quote(arn, safe="") + "/redrive", method="POST")

            # Then the same execution delivers the notification and the graph turns green
            assert wait_for_execution(sfn, arn, timeout=30)["status"] == "SUCCEEDED"
            detail = http_json(url + "api/executions/" + urllib.parse.quote(arn, safe=""))
            assert detail["record"]["status"] == "SUCCESS"
            assert detail["colours"]["RecordSuccess"] == "succeeded"
            assert [r.status for r in rx.requests_for(gone.path)] == [404, 200]
        finally:
            stop.set()
            server.join(timeout=10)
        assert not server.is_alive()
