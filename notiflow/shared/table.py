"""Plain-text tables for terminals: no dependency, predictable widths."""

from __future__ import annotations

from collections.abc import Sequence


def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]], max_width: int = 48) -> str:
    """Left-aligned columns separated by two spaces; long cells are cut with an ellipsis."""

    def cell(value: object) -> str:
        text = "-" if value is None or value == "" else str(value)
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    grid = [[cell(h) for h in headers]] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(headers))]
    lines = ["  ".join(text.ljust(widths[i]) for i, text in enumerate(line)).rstrip() for line in grid]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
