"""How deeply JSON nests, measured without recursion (so no depth can crash the measuring).

Python's ``json`` module, pydantic's serializer and Step Functions all recurse over nested
arrays and objects; a body nested a few hundred or thousand levels deep makes each of them
fail in its own way. The contract therefore limits nesting (``MAX_NESTING_DEPTH`` in
``lambdas/shared/models.py``), and both checks below stop as soon as the limit is passed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

_TOKENS: Final = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def text_exceeds(text: str, limit: int) -> bool:
    """Whether raw JSON text opens more than ``limit`` nested arrays/objects (strings are skipped)."""
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > limit:
                return True
        elif token in ("]", "}"):
            depth -= 1
    return False


def value_exceeds(value: Any, limit: int) -> bool:
    """Whether a parsed JSON value nests more than ``limit`` arrays/objects (the outermost counts as 1)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        if depth + 1 > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
