"""Cold-start cost of each Lambda handler, as a ratio to a bare ``import boto3``.

Each measurement is a fresh Python process with ``LAMBDA_TASK_ROOT`` set (as on Lambda, where
Powertools turns tracing on): the time to import the module, read inside that process. The
modules are measured round-robin (so drift on a shared machine hits all of them alike), and
each ratio is the median of the handler's times over the median of boto3's.

Two reference rows show the floor: the libraries every step imports (Powertools, pydantic with
one model) and the same plus ``requests`` (deliver's), timed the same way, so a handler's ratio
splits into what the libraries cost and what ``lambdas/`` adds. A column gives how much of each
import is compiling ``lambdas/`` source: the asset ships no bytecode (it is built by a Python that
is not the runtime's, and ``/var/task`` is read-only), so Lambda compiles it on every cold start.

A second table adds what a step does on its first call before any request: building the AWS
clients it uses (handlers build them lazily, so this moves cost from import to first call;
the totals are compared with ``import boto3`` plus building the same clients).

    .venv/bin/python bench/cold_start.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HANDLERS = {
    "ingest": ("lambdas.ingest.handler", ("stepfunctions",)),
    "validate": ("lambdas.validate.handler", ()),
    "deduplicate": ("lambdas.deduplicate.handler", ("dynamodb",)),
    "deliver": ("lambdas.deliver.handler", ("dynamodb", "secretsmanager")),
    "failure_gate": ("lambdas.failure_gate.handler", ()),
}
BASELINE = "boto3"
LIBRARIES = """from aws_lambda_powertools import Logger, Metrics
Logger()
Metrics()
import pydantic
class _Model(pydantic.BaseModel):
    value: int"""
FLOORS = {
    "libraries": LIBRARIES,
    "libraries+requests": LIBRARIES + "\nimport requests",
}
"""What every step imports before any line of ours (Powertools' Logger and Metrics, pydantic with one model
built), and the same plus ``requests``, which only deliver needs: the part of a handler's import no change
inside ``lambdas/`` can remove."""

IMPORT_ONLY = """
import time
started = time.perf_counter()
import {module}
print(time.perf_counter() - started)
"""

COMPILE_ONLY = """
import sys
import time
import {module}
spent = 0.0
for name, loaded in list(sys.modules.items()):
    path = getattr(loaded, "__file__", None)
    if name.split(".")[0] == "lambdas" and path:
        with open(path, encoding="utf-8") as source:
            text = source.read()
        started = time.perf_counter()
        compile(text, path, "exec")
        spent += time.perf_counter() - started
print(spent)
"""

TIMED = """
import time
started = time.perf_counter()
{code}
print(time.perf_counter() - started)
"""

WITH_CLIENTS = """
import time
started = time.perf_counter()
import {module}
{build}
print(time.perf_counter() - started)
"""


def run(code: str) -> float:
    """Seconds reported by ``code`` in a fresh interpreter with a Lambda-like environment."""
    env = {
        **os.environ,
        "LAMBDA_TASK_ROOT": str(ROOT),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        # As on Lambda: the asset ships no .pyc and /var/task is read-only, so lambdas/ compiles on every start.
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("POWERTOOLS_TRACE_DISABLED", None)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def build_clients(services: tuple[str, ...], *, shared: bool) -> str:
    if not services:
        return ""
    if shared:
        return "\n".join(f"lambdas.shared.aws.client({name!r})" for name in services)
    return "import boto3.session\ns = boto3.session.Session()\n" + "\n".join(f"s.client({name!r})" for name in services)


def measure(rounds: int) -> dict[str, dict[str, list[float]]]:
    times: dict[str, dict[str, list[float]]] = {"import": {}, "compile": {}, "floor": {}, "clients": {}}
    for _ in range(rounds):
        times["import"].setdefault(BASELINE, []).append(run(IMPORT_ONLY.format(module=BASELINE)))
        for floor, code in FLOORS.items():
            times["floor"].setdefault(floor, []).append(run(TIMED.format(code=code)))
        for step, (module, services) in HANDLERS.items():
            times["import"].setdefault(step, []).append(run(IMPORT_ONLY.format(module=module)))
            times["compile"].setdefault(step, []).append(run(COMPILE_ONLY.format(module=module)))
            if services:
                baseline = WITH_CLIENTS.format(module=BASELINE, build=build_clients(services, shared=False))
                times["clients"].setdefault(f"{BASELINE}+{step}", []).append(run(baseline))
                code = WITH_CLIENTS.format(
                    module=f"{module}, lambdas.shared.aws", build=build_clients(services, shared=True)
                )
                times["clients"].setdefault(step, []).append(run(code))
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="fresh processes per module (median taken)")
    args = parser.parse_args(argv)
    times = measure(args.rounds)
    base = statistics.median(times["import"][BASELINE])
    print(f"import, fresh process, LAMBDA_TASK_ROOT set, median of {args.rounds} rounds")
    print(f"{'module':<14} {'median ms':>10} {'x import boto3':>15} {'compiling lambdas/ ms':>22}")
    print(f"{'boto3':<14} {base * 1000:>10.0f} {1.0:>15.2f}")
    for step in HANDLERS:
        median = statistics.median(times["import"][step])
        compiling = statistics.median(times["compile"][step])
        print(f"{step:<14} {median * 1000:>10.0f} {median / base:>15.2f} {compiling * 1000:>22.0f}")
    print()
    print("the libraries alone (no line of lambdas/), same conditions")
    for floor in FLOORS:
        median = statistics.median(times["floor"][floor])
        print(f"{floor:<20} {median * 1000:>4.0f} ms {median / base:>5.2f}x import boto3")
    print()
    print("import + the AWS clients the step builds on its first call, against import boto3 + the same clients")
    print(f"{'step':<14} {'median ms':>10} {'boto3 + clients':>16} {'ratio':>7}")
    for step, (_, services) in HANDLERS.items():
        if not services:
            continue
        ours = statistics.median(times["clients"][step])
        theirs = statistics.median(times["clients"][f"{BASELINE}+{step}"])
        print(f"{step:<14} {ours * 1000:>10.0f} {theirs * 1000:>16.0f} {ours / theirs:>7.2f}")


if __name__ == "__main__":
    main()
