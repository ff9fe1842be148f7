"""Guard of the moto internals the engine relies on, generated from the one table in engine/internals.py.

One check per row of PATCHES and USES: the target exists in moto 5.2.5 with the parameters, type or
source the engine expects (absent for what the engine adds; unchanged source for code it mirrors).
Then install and uninstall: every row applied, every row given back exactly as stock moto had it.
"""

from __future__ import annotations

import time

import moto
import pytest

from notiflow.local import engine, stack
from notiflow.local.engine import internals, patching


def test_moto_is_the_pinned_version():
    assert moto.__version__ == internals.MOTO_VERSION


def test_every_row_names_a_distinct_target():
    keys = [row.key for row in internals.PATCHES]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("row", internals.PATCHES, ids=lambda row: row.key)
def test_patched_internal_has_the_expected_shape(row):
    assert patching.check(row.owner, row.attribute, row.expect) == []


@pytest.mark.parametrize("row", internals.USES, ids=lambda row: row.key)
def test_used_internal_has_the_expected_shape(row):
    assert patching.check(row.owner, row.attribute, row.expect) == []


def test_a_changed_internal_is_reported():
    # Given expectations that stock moto does not meet
    wrong = internals.Expect(params="self, something_else", calls=("not in the source",), source_sha256="0" * 64)

    # When a row with them is checked, then every mismatch is named
    problems = patching.check("moto.stepfunctions.parser.asl.eval.environment:Environment", "set_stop", wrong)
    assert len(problems) == 3
    assert patching.check("moto.sqs.models:Queue", "no_such_attribute", internals.Expect()) == [
        "moto.sqs.models:Queue.no_such_attribute does not exist"
    ]
    assert patching.check("moto.sqs.models:Queue", "attributes", internals.Expect(absent=True))


def _current(row: internals.Patch) -> tuple[object, object]:
    owner = patching.resolve_owner(row.owner)
    return getattr(owner, row.attribute, patching.MISSING), patching.own_value(owner, row.attribute)


def _new_item() -> object:
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    return Item(hash_key=DynamoType({"S": "k"}), range_key=None, attrs={"k": {"S": "k"}})


@pytest.fixture
def no_stack_running():
    assert stack._running is None, "install/uninstall must not run under a live stack"
    yield
    engine.install()  # the session runs with the engine installed (pytest_configure)


def test_uninstall_gives_stock_moto_back_and_install_applies_every_row(no_stack_running):
    import moto.dynamodb.models.dynamo_type as dynamo_type
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    # Given the engine installed, with the stock values it recorded
    engine.install()
    stock = {row.key: patching.stock(row.owner, row.attribute) for row in internals.PATCHES}

    # When it is uninstalled (twice: idempotent)
    engine.uninstall()
    engine.uninstall()

    # Then every target holds its stock value again, inherited and added attributes are gone
    assert not engine.is_installed()
    for row in internals.PATCHES:
        value, own = _current(row)
        assert own is stock[row.key][1], row.key
        if own is patching.MISSING and not row.expect.absent:
            assert value is stock[row.key][0], row.key
    assert retrier_decl.time is time
    tracked_before = len(dynamo_type.Item.instances_tracked)
    item = _new_item()
    assert dynamo_type.Item.instances_tracked[-1] is item
    dynamo_type.Item.instances_tracked.remove(item)

    # When it is installed again
    engine.install()

    # Then every target holds the engine's value and Items are no longer tracked
    assert engine.is_installed()
    for row in internals.PATCHES:
        value, _ = _current(row)
        assert value is not stock[row.key][0], row.key
    assert retrier_decl.time is not time
    _new_item()
    assert len(dynamo_type.Item.instances_tracked) == tracked_before


def test_a_row_that_no_longer_matches_moto_undoes_the_install(no_stack_running, monkeypatch):
    # Given a table whose last row names an attribute moto does not have
    engine.uninstall()
    broken = internals.Patch("moto.sqs.models:Queue", "no_such_attribute", object(), "test", "test")
    with monkeypatch.context() as patched:
        patched.setattr(patching, "PATCHES", (*internals.PATCHES, broken))

        # When it is installed, then it fails and nothing stays patched
        with pytest.raises(RuntimeError, match="no_such_attribute does not exist"):
            engine.install()
    assert not engine.is_installed()
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    assert retrier_decl.time is time


def test_redrive_action_is_dispatched_by_name():
    from moto.core.utils import method_names_from_class
    from moto.stepfunctions.responses import StepFunctionResponse

    assert "redrive_execution" in method_names_from_class(StepFunctionResponse)
