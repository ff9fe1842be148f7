"""The process cache behind shared AWS clients and the signing secret: one build per key, expiry, clearing."""

from __future__ import annotations

import threading

from lambdas.shared import aws


def test_concurrent_first_calls_build_once_and_share_the_value() -> None:
    builds: list[str] = []
    gate = threading.Event()

    @aws.process_cache()
    def expensive(name: str) -> object:
        gate.wait(5)  # every caller arrives while the first build is still running
        builds.append(name)
        return object()

    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(expensive("dynamodb"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join(5)

    assert builds == ["dynamodb"]
    assert len(results) == 8
    assert all(result is results[0] for result in results)


def test_values_expire_after_max_age_and_can_be_cleared(monkeypatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(aws.time, "monotonic", lambda: now[0])
    values = iter(range(100))

    @aws.process_cache(max_age=300)
    def secret(secret_id: str) -> int:
        return next(values)

    assert secret("s") == secret("s") == 0
    now[0] += 299
    assert secret("s") == 0
    now[0] += 1
    assert secret("s") == 1
    assert secret("other") == 2
    secret.cache_clear()
    assert secret("s") == 3


def test_the_local_engine_cold_start_finds_and_clears_these_caches() -> None:
    # notiflow/local's cold start clears every module-level object of lambdas.* with a cache_clear
    # whose __module__ is that module (as functools caches have); the cache class itself must not match
    assert aws.client.__module__ == "lambdas.shared.aws"
    assert callable(aws.client.cache_clear)
    assert not hasattr(aws.ProcessCache, "cache_clear")
