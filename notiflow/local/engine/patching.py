"""Apply and remove the rows of :data:`~notiflow.local.engine.internals.PATCHES`, and check rows against moto.

Install is explicit (a stack starting, or the pytest plugin's configure hook), idempotent and
thread-safe; uninstall puts back exactly what stock moto had, deleting attributes the engine added
or that the patched class only inherited.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final

import moto

from notiflow.local.engine.internals import MOTO_VERSION, PATCHES, Expect, Patch

MISSING: Final = object()
"""Marks an attribute that does not exist (or is not in the owner's own namespace)."""


def resolve_owner(owner: str) -> Any:
    """The module or class named ``package.module[:Class]``."""
    module_name, _, class_path = owner.partition(":")
    value: Any = importlib.import_module(module_name)
    for part in filter(None, class_path.split(".")):
        value = getattr(value, part)
    return value


def own_value(owner: Any, attribute: str) -> Any:
    if isinstance(owner, ModuleType):
        return getattr(owner, attribute, MISSING)
    return vars(owner).get(attribute, MISSING)


@dataclass(frozen=True)
class _Applied:
    patch: Patch
    owner: Any
    own_value: Any
    """The raw value in the owner's namespace before install (a descriptor, not what getattr gives), or MISSING."""
    stock: Any
    """What ``getattr`` gave before install: what a wrapper wraps."""


_applied: list[_Applied] = []
_lock = threading.Lock()


def is_installed() -> bool:
    """Whether :func:`install` has patched moto in this process."""
    return bool(_applied)


def install() -> None:
    """Apply every row of the table, or none: a row that does not match moto undoes the others."""
    with _lock:
        if _applied:
            return
        if moto.__version__ != MOTO_VERSION:
            raise RuntimeError(f"notiflow.local supports moto {MOTO_VERSION} exactly, found {moto.__version__}")
        try:
            for patch in PATCHES:
                owner = resolve_owner(patch.owner)
                stock_value = getattr(owner, patch.attribute, MISSING)
                if patch.expect.absent != (stock_value is MISSING):
                    state = "already exists" if patch.expect.absent else "does not exist"
                    raise RuntimeError(f"{patch.key} {state} in moto {moto.__version__}")
                value = patch.replacement(stock_value) if patch.wraps else patch.replacement
                applied = _Applied(patch, owner, own_value(owner, patch.attribute), stock_value)
                setattr(owner, patch.attribute, value)
                _applied.append(applied)
        except BaseException:
            _restore()
            raise


def _restore() -> None:
    while _applied:
        applied = _applied.pop()
        if applied.own_value is MISSING:
            delattr(applied.owner, applied.patch.attribute)
        else:
            setattr(applied.owner, applied.patch.attribute, applied.own_value)


def uninstall() -> None:
    """Put back every patched attribute as stock moto had it (idempotent)."""
    with _lock:
        _restore()


def stock(owner: str, attribute: str) -> tuple[Any, Any]:
    """(value, own value) of ``owner.attribute`` in stock moto, whether or not the engine is installed.

    The own value is what the owner's namespace held, MISSING when the attribute is inherited.
    """
    for applied in list(_applied):
        if applied.patch.owner == owner and applied.patch.attribute == attribute:
            return applied.stock, applied.own_value
    resolved = resolve_owner(owner)
    return getattr(resolved, attribute, MISSING), own_value(resolved, attribute)


def source_sha256(function: Any) -> str:
    """Hash of a function's source, as recorded in :attr:`Expect.source_sha256`."""
    return hashlib.sha256(inspect.getsource(function).encode("utf-8")).hexdigest()


def check(owner: str, attribute: str, expect: Expect) -> list[str]:
    """What about stock ``owner.attribute`` contradicts ``expect``; empty when everything holds."""
    value, own = stock(owner, attribute)
    target = f"{owner}.{attribute}"
    if expect.absent:
        return [] if value is MISSING else [f"{target} exists in moto; the engine would shadow it"]
    if value is MISSING:
        return [f"{target} does not exist"]
    problems: list[str] = []
    if expect.inherited_from is not None:
        if own is not MISSING:
            problems.append(f"{target} is defined by the class itself, not inherited")
        if attribute not in vars(resolve_owner(expect.inherited_from)):
            problems.append(f"{expect.inherited_from}.{attribute} does not exist")
    function: Any = value.fget if isinstance(value, property) else value
    names = expect.param_names
    if names is not None:
        params = tuple(inspect.signature(function).parameters)
        if params != names:
            problems.append(f"{target} takes {params}, expected {names}")
    if expect.kind is not None and not isinstance(value, expect.kind):
        problems.append(f"{target} is a {type(value).__name__}, expected a {expect.kind.__name__}")
    if expect.module is not None and not (isinstance(value, ModuleType) and value.__name__ == expect.module):
        problems.append(f"{target} is {value!r}, expected the module {expect.module}")
    if expect.calls:
        source = inspect.getsource(function)
        problems += [f"{target} no longer contains {snippet!r}" for snippet in expect.calls if snippet not in source]
    if expect.source_sha256 is not None and source_sha256(function) != expect.source_sha256:
        problems.append(f"{target} changed and the engine mirrors its code: review the replacement, then the hash")
    return problems
