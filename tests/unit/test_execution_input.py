"""Reading a notification id back from an execution input, as the reconciler, the CLI and the console do."""

from __future__ import annotations

import pytest

from lambdas.shared.models import notification_id_of_input


def test_the_id_ingest_wrote_is_read_back() -> None:
    assert notification_id_of_input('{"notificationId": "n-1", "notification": null}') == "n-1"


@pytest.mark.parametrize(
    "text",
    [None, "", '{"notificationId": "n-1"', "[1, 2]", '{"notificationId": ""}', '{"notificationId": 7}', "{}"],
)
def test_inputs_without_a_usable_id_give_none_and_never_raise(text: str | None) -> None:
    assert notification_id_of_input(text) is None
