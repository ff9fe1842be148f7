"""The shapes of the rows in the engine's table of moto internals (:mod:`.internals`, :mod:`.uses`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

MOTO_VERSION: Final = "5.2.5"
P: Final = "moto.stepfunctions.parser"
TASK: Final = f"{P}.asl.component.state.exec.state_task"


@dataclass(frozen=True)
class Expect:
    """The shape of a stock moto attribute the engine relies on; fields left empty are not checked."""

    params: str | None = None
    """Parameter names of a function or method, comma-separated, in order."""
    kind: type | None = None
    """The attribute is an instance of this type (``type`` for a class)."""
    module: str | None = None
    """The attribute is this module (e.g. ``time`` inside retrier_decl)."""
    calls: tuple[str, ...] = ()
    """Snippets the attribute's source must contain (a hook it calls, a global it reads)."""
    source_sha256: str | None = None
    """Hash of the source of a function the replacement mirrors: any change in moto must be reviewed."""
    absent: bool = False
    """The attribute must not exist: the engine adds it."""
    inherited_from: str | None = None
    """The owner must not define the attribute itself but inherit it from this ``module:Class``."""

    @property
    def param_names(self) -> tuple[str, ...] | None:
        """``params`` as a tuple."""
        return None if self.params is None else tuple(name.strip() for name in self.params.split(","))


@dataclass(frozen=True)
class Patch:
    """One replaced, wrapped or added attribute of moto."""

    owner: str
    """``package.module`` or ``package.module:Class``."""
    attribute: str
    replacement: Any
    """The new value; when ``wraps``, a factory called with the stock value."""
    why: str
    concern: str
    expect: Expect = field(default_factory=Expect)
    wraps: bool = False

    @property
    def key(self) -> str:
        """``owner.attribute``, unique in the table."""
        return f"{self.owner}.{self.attribute}"


@dataclass(frozen=True)
class Use:
    """An internal the engine calls, subclasses or reads without replacing it."""

    owner: str
    attribute: str
    why: str
    expect: Expect = field(default_factory=Expect)

    @property
    def key(self) -> str:
        """``owner.attribute``."""
        return f"{self.owner}.{self.attribute}"


def use(owner: str, attribute: str, why: str, **expect: Any) -> Use:
    """A :class:`Use` row with its expected shape given as keywords."""
    return Use(owner, attribute, why, Expect(**expect))
