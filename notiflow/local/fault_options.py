"""``--faults``, ``--fault-seed`` and ``--fault-report`` of ``notiflow local up`` (README "Fault injection").

Kept apart from the engine so the CLI parser does not import moto; the spec is checked when given.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Final

FAULT_REPORT: Final = Path(".notiflow") / "local" / "faults.json"
EXAMPLE: Final = "lambda-throttle=0.05,ddb-throttle=0.05,sqs-duplicate=0.02,crash-after-state=Deliver:0.1"


def fault_spec(value: str) -> str:
    """argparse type of ``--faults``: the spec as given, once it parses."""
    from notiflow.local.engine.faults import FaultSpec, FaultSpecError

    try:
        FaultSpec.parse(value)
    except FaultSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def add_fault_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the fault injection options to ``parser``."""
    parser.add_argument(
        "--faults",
        type=fault_spec,
        default=None,
        metavar="SPEC",
        help=f"inject platform faults with these probabilities, e.g. {EXAMPLE}",
    )
    parser.add_argument("--fault-seed", type=int, default=0, metavar="N", help="seed of the fault decisions")
    parser.add_argument(
        "--fault-report",
        type=Path,
        default=FAULT_REPORT,
        metavar="PATH",
        help=f"JSON file with the faults injected so far, per kind and per notification (default {FAULT_REPORT})",
    )
