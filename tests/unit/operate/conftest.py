"""Fixtures of the operator query tests: the spec's table in moto."""

from tests.unit.ops_table import ops_store, ops_table

__all__ = ["ops_store", "ops_table"]
