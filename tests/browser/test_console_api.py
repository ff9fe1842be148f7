"""The console's JSON API and its guards, over HTTP on 127.0.0.1 (no browser needed)."""

from __future__ import annotations

import itertools
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

import pytest

from notiflow.console.server import ConsoleServer
from tests.browser.conftest import XSS_ID, Runs


def call(
    console: ConsoleServer, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, Any, dict[str, str]]:
    request = urllib.request.Request(console.url.rstrip("/") + path, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the console on 127.0.0.1
            body = response.read()
            return response.status, json.loads(body) if body[:1] in (b"{", b"[") else body, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null"), dict(error.headers)


def execution_path(arn: str, suffix: str = "") -> str:
    return f"/api/executions/{quote(arn, safe='')}{suffix}"


def test_executions_join_runs_with_their_records(console: ConsoleServer, runs: Runs) -> None:
    # Given the finished runs
    # When the list is requested, filtered by notification status FAILED
    status, body, headers = call(console, "/api/executions?status=RECORD:FAILED")

    # Then the delivery failures come back with their record fields
    assert status == 200
    assert headers["Cache-Control"] == "no-store"
    assert {row["recordStatus"] for row in body["executions"]} == {"FAILED"}
    assert runs.ids["failed"] in {row["notificationId"] for row in body["executions"]}
    assert runs.ids["delivered"] not in {row["notificationId"] for row in body["executions"]}
    failed = next(row for row in body["executions"] if row["notificationId"] == runs.ids["failed"])
    assert (failed["runStatus"], failed["recordStatus"], failed["lastStatusCode"]) == ("FAILED", "FAILED", 404)
    assert failed["attempts"] >= 1
    assert failed["startDate"] <= failed["stopDate"]
    assert body["next"] is None

    # When searching by a notification id that needs escaping
    status, body, _ = call(console, "/api/executions?q=" + quote(XSS_ID))
    # Then the run is found under its hashed execution name
    assert [row["notificationId"] for row in body["executions"]] == [XSS_ID]
    assert body["executions"][0]["name"] != XSS_ID


def test_the_list_is_read_a_page_at_a_time(console: ConsoleServer, runs: Runs) -> None:
    # Given every run of the state machine
    sfn = runs.stack.client("stepfunctions")
    everything = [
        e["executionArn"] for e in sfn.list_executions(stateMachineArn=runs.stack.state_machine_arn)["executions"]
    ]
    # When the list is read two at a time, following each page's token
    seen: list[str] = []
    token: str | None = None
    for _ in range(len(everything)):
        query = "/api/executions?limit=2" + (f"&next={quote(token)}" if token else "")
        status, body, _ = call(console, query)
        assert status == 200
        assert len(body["executions"]) <= 2
        seen += [row["executionArn"] for row in body["executions"]]
        token = body["next"]
        if token is None:
            break
    # Then every run is listed exactly once, newest first
    assert seen == everything
    # And a token the console did not issue for this listing is refused
    assert call(console, "/api/executions?next=not-a-token")[0] == 400
    _, first, _ = call(console, "/api/executions?limit=1")
    assert call(console, "/api/executions?status=RECORD:FAILED&next=" + quote(first["next"]))[0] == 400


def test_execution_view_has_history_passes_colours_and_record(console: ConsoleServer, runs: Runs) -> None:
    # When one failed run is requested
    status, body, _ = call(console, execution_path(runs.arns["failed"]))

    # Then it carries everything the page draws
    assert status == 200
    assert body["execution"]["status"] == "FAILED"
    assert body["colours"]["FailureGate"] == "failed"
    assert body["colours"]["Deliver"] == "caught"
    assert body["record"]["status"] == "FAILED"
    assert body["recordOwned"] is True
    assert body["redrive"] == {"allowed": True, "reason": None}
    assert body["events"][0]["type"] == "ExecutionStarted"
    assert body["events"][-1]["type"] == "ExecutionFailed"
    assert [e["elapsedMs"] for e in body["events"]] == sorted(e["elapsedMs"] for e in body["events"])
    assert {e["state"] for e in body["events"] if e["type"] == "TaskScheduled"} >= {"Validate", "Deliver"}
    # And one pass per start or redrive, the last one current and coloured
    assert body["currentPass"] == len(body["passes"]) == body["execution"].get("redriveCount", 0) + 1
    assert body["passes"][0]["resumedIn"] == "Route"
    assert body["passes"][-1]["status"] == "FAILED"
    assert body["passColours"][str(body["currentPass"])] == body["colours"]
    assert {visit["pass"] for visit in body["timeline"]} == set(range(1, body["currentPass"] + 1))


def test_definition_graph_covers_every_state_and_edge(console: ConsoleServer, runs: Runs) -> None:
    # When the definition is requested
    _, body, _ = call(console, "/api/definition")

    # Then every state is a node, and every Next, Default, Choice and Catch is an edge
    states = body["definition"]["States"]
    assert {n["name"] for n in body["graph"]["nodes"]} == set(states)
    expected = set()
    for name, state in states.items():
        targets = [state.get("Next"), state.get("Default")]
        targets += [c["Next"] for c in state.get("Choices", []) + state.get("Catch", [])]
        expected |= {(name, t) for t in targets if t}
    assert {(e["source"], e["target"]) for e in body["graph"]["edges"]} == expected
    # And the only edges drawn upwards are the loops back (Retry-After wait, a redrive resuming where it failed)
    assert sorted((e["source"], e["target"]) for e in body["graph"]["edges"] if e["back"]) == [
        ("ResumeAfterRedrive", "Deduplicate"),
        ("ResumeAfterRedrive", "Deliver"),
        ("ResumeAfterRedrive", "Deliver"),
        ("ResumeAfterRedrive", "Validate"),
        ("WaitRetryAfter", "Deliver"),
    ]
    # And forward edges point down, and no two nodes of a layer overlap
    layer = {n["name"]: n["layer"] for n in body["graph"]["nodes"]}
    assert all(layer[e["target"]] > layer[e["source"]] for e in body["graph"]["edges"] if not e["back"])
    by_layer: dict[int, list[dict[str, Any]]] = {}
    for n in body["graph"]["nodes"]:
        by_layer.setdefault(n["layer"], []).append(n)
    for nodes in by_layer.values():
        nodes.sort(key=lambda n: n["x"])
        assert all(a["x"] + a["width"] <= b["x"] for a, b in itertools.pairwise(nodes))


@pytest.mark.parametrize(
    ("role", "headers", "expected_status", "message"),
    [
        ("failed", {}, 403, "X-Notiflow-Console"),
        ("delivered", {"X-Notiflow-Console": "1"}, 409, "SUCCEEDED"),
        ("rejected", {"X-Notiflow-Console": "1"}, 409, "notiflow-replay=true"),
    ],
)
def test_redrive_is_refused_without_the_console_header_for_a_succeeded_or_a_rejected_run(
    console: ConsoleServer, runs: Runs, role: str, headers: dict[str, str], expected_status: int, message: str
) -> None:
    # Given the run as it is now
    _, before, _ = call(console, execution_path(runs.arns[role]))
    # When a redrive is posted without the console's header (as a cross-site form would), or for a run that
    # succeeded or was rejected
    status, body, _ = call(console, execution_path(runs.arns[role], "/redrive"), "POST", headers)

    # Then it is refused with the reason, and the run is unchanged
    assert status == expected_status
    assert message in body["error"]
    _, view, _ = call(console, execution_path(runs.arns[role]))
    assert view["execution"].get("redriveCount", 0) == before["execution"].get("redriveCount", 0)


def test_foreign_host_names_and_unknown_paths_are_refused(console: ConsoleServer, runs: Runs) -> None:
    # When a request names another host (a DNS rebinding attempt)
    status, _body, _ = call(console, "/api/executions", headers={"Host": "attacker.example:80"})
    # Then it is refused
    assert status == 421

    # When an unknown execution or path is requested
    missing = runs.arns["failed"].rsplit(":", 1)[0] + ":no-such-run"
    assert call(console, execution_path(missing))[0] == 404
    assert call(console, "/etc/passwd")[0] == 404
    assert call(console, "/static/../server.py")[0] == 404

    # Then the page itself is served with a policy that forbids inline and foreign scripts
    status, _, headers = call(console, "/")
    assert status == 200
    assert "script-src 'self'" in headers["Content-Security-Policy"]
