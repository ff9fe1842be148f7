"""make cost: the realistic mix through the embedded stack in both delivery modes, priced side by side.

    python bench/cost_mix.py [--count 200] [--modes standard,fast-path] [--workers 4] [--json PATH]

Runs each mode on a fresh embedded stack (standard first, then fast-path) and prints the table
from notiflow.cost.report. The last line is the one scripts read. Usage files
go to .notiflow/cost/usage-<mode>.json, so ``notiflow cost --usage`` can print them again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lambdas.shared.constants import DeliveryMode
from notiflow.cost.mix import LOG_DIR, run_mode
from notiflow.cost.model import price
from notiflow.cost.prices import load_prices
from notiflow.cost.report import render


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200, help="notifications of the mix per mode (plus ~1%% rejected)")
    parser.add_argument("--modes", default="standard,fast-path", help="delivery modes, in order")
    parser.add_argument(
        "--workers", type=int, default=4, help="runs the engine executes at once (fewer: less CPU contention here)"
    )
    parser.add_argument("--json", type=Path, help="also write the usage of every mode to this file")
    args = parser.parse_args(argv)
    prices = load_prices()
    costs = {}
    out = sys.stderr
    for name in [m.strip() for m in args.modes.split(",") if m.strip()]:
        mode = DeliveryMode(name)
        result = run_mode(mode, args.count, prices, workers=args.workers, progress=lambda m: print(m, file=out))
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        (LOG_DIR / f"usage-{mode.value}.json").write_text(json.dumps(result.usage.as_json(), indent=2) + "\n")
        costs[mode.value] = price(result.usage, prices)
    if args.json:
        args.json.write_text(json.dumps({m: c.usage.as_json() for m, c in costs.items()}, indent=2) + "\n")
    print(render(costs, prices))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
