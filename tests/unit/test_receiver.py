"""The scripted webhook receiver, exercised with plain http.client and raw sockets on 127.0.0.1."""

from __future__ import annotations

import base64
import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from lambdas.deliver import signing
from notiflow.demo.receiver import Step, WebhookReceiver
from notiflow.shared.waiting import wait_until

SECRET = "whsec_" + base64.b64encode(b"receiver-test-secret-0123456789").decode()
REPO_ROOT = Path(__file__).resolve().parents[2]


def post(rx: WebhookReceiver, path: str, body: bytes = b"{}", headers: dict | None = None, timeout: float = 5):
    connection = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=timeout)
    try:
        connection.request("POST", path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def signed_headers(msg_id: str, body: bytes, secret: str = SECRET) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body.decode()),
    }


@pytest.fixture
def rx():
    with WebhookReceiver(secret=SECRET) as receiver:
        yield receiver


def test_unscripted_path_answers_200_and_records_the_request(rx):
    status, _, body = post(rx, "/ok?tenant=acme", b'{"a":1}', {"Content-Type": "application/json", "X-Trace": "t1"})

    (request,) = rx.requests
    assert (status, body) == (200, b"")
    assert (request.path, request.query, request.method) == ("/ok", "tenant=acme", "POST")
    assert request.headers["x-trace"] == "t1"
    assert request.json() == {"a": 1}
    assert request.status == 200
    assert request.received_at == pytest.approx(time.time(), abs=30)


def test_script_is_consumed_in_order_and_its_last_step_repeats(rx):
    rx.script("/flaky", [Step(503, headers={"Retry-After": "7"}, body="down"), Step(500), Step(200, body="ok")])

    answers = [post(rx, "/flaky")[0] for _ in range(5)]

    assert answers == [503, 500, 200, 200, 200]
    assert [r.status for r in rx.requests_for("/flaky")] == answers


def test_scripted_headers_and_body_are_sent(rx):
    rx.script("/busy", Step(429, headers={"Retry-After": "120"}, body='{"error":"slow down"}'))

    status, headers, body = post(rx, "/busy")

    assert status == 429
    assert headers["Retry-After"] == "120"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"error": "slow down"}


def test_fix_changes_behaviour_for_later_requests(rx):
    # Given an endpoint that always fails
    rx.script("/broken", Step(500))
    assert post(rx, "/broken")[0] == 500

    # When an operator fixes it
    rx.fix("/broken")

    # Then later requests succeed, and the history keeps both
    assert post(rx, "/broken")[0] == 200
    assert [r.status for r in rx.requests_for("/broken")] == [500, 200]


def test_signatures_are_verified_with_standardwebhooks_interop(rx):
    body = b'{"type":"order.created"}'

    post(rx, "/hook", body, signed_headers("msg-1", body))
    post(rx, "/hook", body, signed_headers("msg-2", body, secret="whsec_" + base64.b64encode(b"other").decode()))
    post(rx, "/hook", body)

    assert [r.signature_valid for r in rx.requests_for("/hook")] == [True, False, False]


def test_receiver_without_secret_does_not_judge_signatures():
    with WebhookReceiver() as receiver:
        post(receiver, "/hook")
        assert receiver.requests[0].signature_valid is None


def test_enforcing_receiver_answers_401_without_consuming_the_script():
    with WebhookReceiver(secret=SECRET, enforce_signatures=True) as receiver:
        receiver.script("/hook", [Step(202), Step(500)])
        body = b"{}"

        assert post(receiver, "/hook", body)[0] == 401
        assert post(receiver, "/hook", body, signed_headers("msg-3", body))[0] == 202


def test_keep_alive_connection_serves_many_requests_without_nagle_stalls(rx):
    # Given one HTTP/1.1 connection
    connection = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=5)
    started = time.monotonic()

    # When 40 requests go over it
    for index in range(40):
        connection.request("POST", "/ka", body=json.dumps({"n": index}))
        response = connection.getresponse()
        assert response.status == 200
        response.read()
    elapsed = time.monotonic() - started
    connection.close()

    # Then they all came from one client port, far faster than 40 x 45 ms delayed-ACK stalls
    assert len({r.client_port for r in rx.requests_for("/ka")}) == 1
    assert elapsed < 1.5


def test_delay_outlasts_a_client_timeout(rx):
    rx.script("/slow", Step(200, delay=2))

    with pytest.raises(TimeoutError):
        post(rx, "/slow", timeout=0.2)
    assert len(rx.requests_for("/slow")) == 1


def test_reset_aborts_the_connection_mid_response(rx):
    rx.script("/reset", Step(reset=True))

    with socket.create_connection(("127.0.0.1", rx.port), timeout=5) as sock:
        sock.sendall(b"POST /reset HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        received, reset = b"", False
        try:
            while chunk := sock.recv(1024):
                received += chunk
        except ConnectionResetError:
            reset = True

    # Then at most the partial head arrived, and the connection ended with RST, not FIN
    assert reset is True
    assert b"HTTP/1.1 200 OK\r\nContent-".startswith(received)


def test_huge_body_is_streamed_with_its_length(rx):
    rx.script("/huge", Step(200, huge=3_000_000))

    status, headers, body = post(rx, "/huge")

    assert status == 200
    assert headers["Content-Length"] == "3000000"
    assert len(body) == 3_000_000


def test_drip_sends_the_body_slowly(rx):
    rx.script("/drip", Step(200, body="abcde", drip=0.05))

    started = time.monotonic()
    status, _, body = post(rx, "/drip")

    assert (status, body) == (200, b"abcde")
    assert time.monotonic() - started >= 0.2


def test_redirect_carries_the_location(rx):
    rx.script("/moved", Step(redirect="https://hooks.example.com/new"))

    status, headers, _ = post(rx, "/moved")

    assert status == 301
    assert headers["Location"] == "https://hooks.example.com/new"


def test_204_has_no_body_and_keeps_the_connection_usable(rx):
    rx.script("/empty", Step(204, body="ignored"))
    connection = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=5)

    for _ in range(2):
        connection.request("POST", "/empty", body=b"{}")
        response = connection.getresponse()
        assert (response.status, response.read()) == (204, b"")
    connection.close()


def test_chunked_request_bodies_are_decoded(rx):
    connection = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=5)
    connection.request("POST", "/chunked", body=iter([b'{"a":', b"1}"]), encode_chunked=True)
    assert connection.getresponse().status == 200
    connection.close()

    assert rx.requests_for("/chunked")[0].json() == {"a": 1}


def test_concurrent_requests_each_take_their_own_step(rx):
    # Given a script of 20 distinct statuses
    statuses = list(range(200, 220))
    rx.script("/par", [Step(status) for status in statuses])

    # When 20 clients post at once
    answers, lock = [], threading.Lock()

    def client():
        status = post(rx, "/par")[0]
        with lock:
            answers.append(status)

    threads = [threading.Thread(target=client) for _ in statuses]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    # Then every step was used exactly once and every request recorded
    assert sorted(answers) == statuses
    assert len(rx.wait_for("/par", 20, timeout=5)) == 20


def test_wait_for_times_out_with_a_count(rx):
    with pytest.raises(TimeoutError, match="0 of 1"):
        rx.wait_for("/never", 1, timeout=0.1)


def test_close_does_not_wait_for_pending_delays():
    # Given a client waiting on a 30 s delayed response
    receiver = WebhookReceiver().start()
    receiver.script("/slow", Step(200, delay=30))
    errors = []

    def client():
        try:
            post(receiver, "/slow", timeout=10)
        except (OSError, http.client.HTTPException) as exc:
            errors.append(exc)

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    receiver.wait_for("/slow", 1)

    # When the receiver closes
    started = time.monotonic()
    receiver.close()
    thread.join(5)

    # Then it stops at once and the client sees the connection end without an answer
    assert time.monotonic() - started < 3
    assert not thread.is_alive()
    assert len(errors) == 1


def test_verify_helper_matches_what_the_receiver_records(rx):
    body = b'{"n":1}'
    keys = signing.parse_secrets(SECRET)
    headers = signing.signature_headers(keys, "msg-9", int(time.time()), body)

    post(rx, "/hook", body, headers)

    assert rx.requests[0].signature_valid is True


def test_command_line_receiver_serves_a_script():
    # Given the receiver started as a program with a script
    process = subprocess.Popen(
        [sys.executable, "-m", "notiflow.demo.receiver", "--port", "0", "--script", "/flaky=503,200"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)", line).group(1))

        # When a client posts twice
        answers = []
        for _ in range(2):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("POST", "/flaky", body=b"{}")
            answers.append(connection.getresponse().status)
            connection.close()

        # Then the script played and each request was logged
        assert answers == [503, 200]
        assert '"POST /flaky HTTP/1.1" 503' in process.stdout.readline()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
        process.stdout.close()
    assert process.returncode == 0


def test_peak_in_flight_is_measured_per_host(rx):
    # Given a slow path, and clients that name two different hosts in the Host header
    rx.script("/slow-peak", Step(200, delay=0.4))
    barrier = threading.Barrier(5)

    def client(host: str) -> None:
        barrier.wait()
        post(rx, "/slow-peak", headers={"Host": f"{host}:{rx.port}"})

    # When three requests for one host and two for another overlap
    threads = [threading.Thread(target=client, args=(host,)) for host in ["a.test"] * 3 + ["b.test"] * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    # Then each host's peak is what it had in flight at once, and later sequential requests do not raise it
    assert rx.peak_in_flight("a.test") == 3
    assert rx.peak_in_flight("B.TEST") == 2
    assert rx.peak_in_flight() == 3
    post(rx, "/slow-peak", headers={"Host": "b.test"})
    assert rx.peak_in_flight("b.test") == 2
    assert rx.peak_in_flight("c.test") == 0


@pytest.mark.parametrize("step", [Step(200, delay=30), Step(200, body="x" * 100, drip=1.0)], ids=["delay", "drip"])
def test_a_request_the_client_gave_up_on_stops_counting_in_flight(rx, step):
    # Given a response that would take 30 s or more (a long delay, or a body dripped one byte a second)
    rx.script("/abandoned", step)
    connection = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=0.3)
    connection.request("POST", "/abandoned", body=b"{}", headers={"Host": "gone.test"})
    rx.wait_for("/abandoned", 1)
    assert rx.in_flight("gone.test") == 1

    # When the client times out and hangs up, as the deliver step does at its read timeout
    with pytest.raises(TimeoutError):
        connection.getresponse().read()
    connection.close()

    # Then the request stops counting in flight within moments, not when the script would have finished
    wait_until(lambda: rx.in_flight("gone.test"), lambda n: n == 0, timeout=3, describe="the request to leave")
    assert rx.peak_in_flight("gone.test") == 1
