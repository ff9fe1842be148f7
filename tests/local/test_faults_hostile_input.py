"""Fault decisions on hostile input: a subject that quotes a body's id must never crash a seam.

The chaos run found it: the SQS poller names a batch by its bodies' notification ids, and an id with
an escaped lone UTF-16 surrogate (valid JSON text, not a character) made every decision about that
batch raise UnicodeEncodeError; the poller dropped the batch, so all ten messages went to the DLQ.
"""

from __future__ import annotations

from notiflow.local.engine import faults


def test_a_lone_surrogate_in_a_subject_is_decided_like_any_other() -> None:
    injector = faults.FaultInjector(faults.FaultSpec.parse("lambda-throttle=0.5", seed=3))

    first = [injector.decide("lambda-throttle", f"notiflow-ingest|half-\ud800,n-{i}") for i in range(200)]
    again = faults.FaultInjector(faults.FaultSpec.parse("lambda-throttle=0.5", seed=3))

    assert first == [again.decide("lambda-throttle", f"notiflow-ingest|half-\ud800,n-{i}") for i in range(200)]
    assert 50 < sum(first) < 150
