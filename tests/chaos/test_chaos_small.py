"""`make chaos` in small: 200 notifications through the embedded stack with receiver faults on 20 hosts.

The same run and reconciliation as ``bench/chaos.py`` (see its docstring for the six invariants),
sized for the test suite, in the default delivery mode with the platform faults on. The run must
exercise what it claims to: a real share of faulted attempts, duplicates, bad input, refused
connections and permanent failures.
"""

from __future__ import annotations

import pytest

from bench.chaos import PLATFORM_FAULTS, ChaosConfig, run, table

pytestmark = pytest.mark.slow


def test_200_notifications_under_chaos_keep_every_invariant() -> None:
    # The default delivery mode (fast path), with every platform fault `make chaos` injects
    report = run(ChaosConfig(count=200, bad_messages=20, faults=PLATFORM_FAULTS, seed=8), log=lambda line: None)

    assert report.ok, "\n" + table(report)
    figures = report.figures
    assert figures["hosts"] >= 20
    assert figures["duplicate copies"] > 0
    assert figures["bad messages"] == 20
    attempts = figures["receiver requests"] + figures["refused attempts"]
    faulted = figures["receiver faults"] + figures["refused attempts"]
    assert 0.2 <= faulted / attempts <= 0.5, table(report)
    assert figures["refused attempts"] > 0
    assert figures["records"]["REJECTED"] == 20
    assert figures["records"]["FAILED"] > 0
    assert figures["peak in flight"] == report.config.host_limit, "the per-host limit was never reached"
    assert report.config.delivery_mode == "fast-path"
    assert any(count for count in figures["platform faults"].values()), "no platform fault was injected"
