"""`make run` as a new user sees it: the demo batch through SQS, read back from records and histories."""

from __future__ import annotations

import io
import re

import pytest

from lambdas.shared.constants import DeliveryMode
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


@pytest.mark.parametrize("mode", [None, DeliveryMode.STANDARD], ids=["default-fast-path", "standard"])
def test_demo_table_shows_every_scenario_as_it_really_ended(mode: DeliveryMode | None) -> None:
    # Given a fresh embedded stack and receiver / When the demo batch runs / Then each row is what happened
    out = io.StringIO()
    assert run_demo(time_scale=0.0001, out=out, delivery_mode=mode) == 0
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
    duplicate_note = rows["duplicate send (same message twice)"][8]
    if mode is DeliveryMode.STANDARD:
        # One Standard run per name: the second message found it.
        assert "2 messages sent -> 1 run, 1 request(s) received" in duplicate_note
    else:
        # Express runs do not deduplicate: the second message ran too (BUSY while the first delivered, then
        # DUPLICATE on its redelivery, or DUPLICATE at once), and only the claim kept it to one request.
        assert re.search(r"2 messages sent -> [23] runs, 1 request\(s\) received", duplicate_note), duplicate_note
    assert rows["immediate success"][8] == "1 received, 1 with valid signature"
    assert (
        rows["429 with Retry-After, then success"][8] == "2 received, 2 with valid signature; Retry-After 1s honoured"
    )
    assert "scheme 'ftp' is not allowed" in rows["invalid message (breaks the contract)"][8]
    if mode is DeliveryMode.STANDARD:
        assert "9 notifications, 9 runs" in text
    else:
        # Every notification starts on the fast path; the three that needed waiting or a failure record handed over.
        assert re.search(r"9 notifications, 1[34] runs \(1[01] fast path, 3 standard\)", text), text
        assert rows["immediate success"][9] == "fast path"
        assert rows["permanent 4xx"][9] == "fast path -> standard"
