"""`make run` as a new user sees it: the demo batch through SQS, read back from records and histories."""

from __future__ import annotations

import io
import re

import pytest

from notiflow.demo.scenarios import run_demo

pytestmark = pytest.mark.slow

EXPECTED = {
    # scenario: (status, attempts, last code, retries, run status)
    "immediate success": ("SUCCESS", "1", "200", "0", "SUCCEEDED"),
    "5xx, then success": ("SUCCESS", "3", "200", "2", "SUCCEEDED"),
    "429 with Retry-After, then success": ("SUCCESS", "2", "200", "1", "SUCCEEDED"),
    "timeout, then success": ("SUCCESS", "2", "200", "1", "SUCCEEDED"),
    "permanent 4xx": ("FAILED", "1", "404", "0", "FAILED"),
    "retries exhausted": ("FAILED", "25", "500", "24", "FAILED"),
    "duplicate send (same message twice)": ("SUCCESS", "1", "200", "0", "SUCCEEDED"),
    "invalid message (breaks the contract)": ("REJECTED", "0", "-", "0", "FAILED"),
    "invalid message (not JSON)": ("REJECTED", "0", "-", "0", "FAILED"),
}


def test_demo_table_shows_every_scenario_as_it_really_ended() -> None:
    # Given a fresh embedded stack and receiver / When the demo batch runs / Then each row is what happened
    out = io.StringIO()
    assert run_demo(time_scale=0.0001, out=out) == 0
    text = out.getvalue()
    rows = {}
    for line in text.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells and cells[0] in EXPECTED:
            rows[cells[0]] = cells
    assert rows.keys() == EXPECTED.keys(), text
    for scenario, (status, attempts, code, retries, run) in EXPECTED.items():
        cells = rows[scenario]
        assert (cells[2], cells[3], cells[4], cells[6], cells[7]) == (status, attempts, code, retries, run), cells
    assert "2 messages sent -> 1 run, 1 request(s) received" in rows["duplicate send (same message twice)"][8]
    assert rows["immediate success"][8] == "1 received, 1 with valid signature"
    assert (
        rows["429 with Retry-After, then success"][8] == "2 received, 2 with valid signature; Retry-After 1s honoured"
    )
    assert "scheme 'ftp' is not allowed" in rows["invalid message (breaks the contract)"][8]
    assert "9 notifications, 9 runs" in text
