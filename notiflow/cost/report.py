"""The cost table: modes side by side, per million notifications, with every derived figure marked.

The last line is fixed so scripts can read it:
``per million: fast-path Step Functions $X.XX, all-in $Y.YY; standard Step Functions $Z.ZZ, all-in $W.WW``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from notiflow.cost.model import Costs, Line
from notiflow.cost.prices import PriceFile
from notiflow.shared.table import render_table

FAST_PATH_SF_TARGET: Final = 3.0
ALL_IN_TARGET: Final = 12.0
MODE_ORDER: Final = ("fast-path", "standard")


@dataclass(frozen=True)
class Verdict:
    """One target of issue 9 item 6 and whether the measured figure meets it."""

    target: str
    figure: float
    limit: float

    @property
    def met(self) -> bool:
        return self.figure <= self.limit

    def line(self) -> str:
        return (
            f"{'MET ' if self.met else 'MISSED'}  {self.target}: ${self.figure:.2f} (target at most ${self.limit:.2f})"
        )


def _money(value: float) -> str:
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"


def _modes(costs: Mapping[str, Costs]) -> list[str]:
    return [m for m in MODE_ORDER if m in costs] + [m for m in costs if m not in MODE_ORDER]


def _cell(line: Line | None) -> str:
    if line is None:
        return "-"
    mark = "" if line.source in ("measured", "assumed sampling", "same attempts") else " *"
    return f"{_money(line.per_million)}{mark}"


def _rows(costs: Mapping[str, Costs], modes: list[str], pick: str) -> list[list[str]]:
    labels: list[tuple[str, str]] = []
    for mode in modes:
        for line in getattr(costs[mode], pick):
            if (line.group, line.label) not in labels:
                labels.append((line.group, line.label))
    rows = []
    for group, label in labels:
        row = [group, label]
        for mode in modes:
            match = next((x for x in getattr(costs[mode], pick) if (x.group, x.label) == (group, label)), None)
            row += [_cell(match), match.quantity if match else "-"]
        rows.append(row)
    return rows


def verdicts(costs: Mapping[str, Costs]) -> list[Verdict]:
    """The targets: fast-path Step Functions at most $3, fast-path all-in at most $12 per million."""
    found = []
    if "fast-path" in costs:
        found.append(Verdict("fast-path Step Functions", costs["fast-path"].step_functions, FAST_PATH_SF_TARGET))
        found.append(Verdict("fast-path all-in", costs["fast-path"].all_in, ALL_IN_TARGET))
    return found


def last_line(costs: Mapping[str, Costs]) -> str:
    """The machine-readable closing line."""
    parts = [
        f"{mode} Step Functions {_money(costs[mode].step_functions)}, all-in {_money(costs[mode].all_in)}"
        for mode in _modes(costs)
    ]
    return "per million: " + "; ".join(parts)


def render(costs: Mapping[str, Costs], prices: PriceFile) -> str:
    """The whole report: components, subtotals, what-if and reference rows, sources, verdicts, last line."""
    modes = _modes(costs)
    headers = ["component", "per million notifications"]
    for mode in modes:
        headers += [mode, f"{mode} quantity"]
    rows = _rows(costs, modes, "lines")
    rows.append(["", "", *["" for _ in modes for _ in range(2)]])
    rows.append(["Total", "Step Functions", *[c for m in modes for c in (_money(costs[m].step_functions), "")]])
    rows.append(["Total", "all-in", *[c for m in modes for c in (_money(costs[m].all_in), "")]])
    rows.append(["", "", *["" for _ in modes for _ in range(2)]])
    rows += _rows(costs, modes, "what_if")
    rows += _rows(costs, modes, "reference")
    out = [prices.describe()]
    for mode in modes:
        usage = costs[mode].usage
        out.append(f"{mode}: {usage.notifications} notifications measured")
    out += ["", render_table(headers, rows, max_width=56), ""]
    derived = [
        f"* {mode} {component}: {text}"
        for mode in modes
        for component, text in sorted(costs[mode].usage.provenance.items())
        if text != "measured"
    ]
    if derived:
        out.append("Derived, not measured (marked *):")
        out += derived
    else:
        out.append("Every figure above is measured from the runs (no derived figures).")
    notes = [f"- {mode}: {note}" for mode in modes for note in costs[mode].usage.notes]
    if notes:
        out += ["Notes:", *notes]
    found = verdicts(costs)
    if found:
        out += ["", "Targets (issue 9 item 6):", *[v.line() for v in found]]
    if "standard" in costs:
        out.append(
            f"        standard Step Functions: {_money(costs['standard'].step_functions)} (the issue quotes about $175:"
            " 7 states per first-try success; the Standard definition now enters 6)"
        )
    out += ["", last_line(costs)]
    return "\n".join(out)
