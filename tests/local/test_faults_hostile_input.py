"""Fault decisions on hostile input: a subject that quotes a body's id must never crash a seam.

The chaos run found two: the SQS poller names a batch by its bodies' notification ids, and an id with
an escaped lone UTF-16 surrogate (valid JSON text, not a character) made every decision about that
batch raise UnicodeEncodeError, and a body of 50,000 opening brackets made the naming raise
RecursionError; either way the poller dropped the batch, so all ten messages went to the DLQ.
"""

from __future__ import annotations

from notiflow.local.engine import fault_seams, faults


def test_a_lone_surrogate_in_a_subject_is_decided_like_any_other() -> None:
    injector = faults.FaultInjector(faults.FaultSpec.parse("lambda-throttle=0.5", seed=3))

    first = [injector.decide("lambda-throttle", f"notiflow-ingest|half-\ud800,n-{i}") for i in range(200)]
    again = faults.FaultInjector(faults.FaultSpec.parse("lambda-throttle=0.5", seed=3))

    assert first == [again.decide("lambda-throttle", f"notiflow-ingest|half-\ud800,n-{i}") for i in range(200)]
    assert 50 < sum(first) < 150


def test_a_body_nested_too_deeply_to_parse_names_no_notification() -> None:
    # The poller names an SQS batch by its bodies; this one made json.loads recurse until it raised.
    batch = {"Records": [{"body": '{"notificationId": "deep-2", "payload": ' + "[" * 50_000}, {"body": "{}"}]}

    assert fault_seams._notification(batch) is None
