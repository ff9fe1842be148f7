"""Cold-start cost of each Lambda handler, as a ratio to a bare ``import boto3``.

Each measurement is a fresh Python process with ``LAMBDA_TASK_ROOT`` set (as on Lambda, where
Powertools turns tracing on): the time to import the module, read inside that process. The
modules are measured round-robin (so drift on a shared machine hits all of them alike), and
each ratio is the median of the handler's times over the median of boto3's.

The default tables import from this checkout, offline: the libraries from the virtualenv and
``lambdas/`` from bytecode cached in a scratch directory first (``PYTHONPYCACHEPREFIX``), as the
asset ships it. A column gives what compiling ``lambdas/`` source would add on top, and two
reference rows show the floor: the libraries every step imports (Powertools, pydantic with one
model) and the same plus ``requests`` (deliver's), so a handler's ratio splits into what the
libraries cost and what ``lambdas/`` adds.

``--asset`` (needs the package index, as ``make package`` does) measures the real thing: two Lambda
assets bundled by ``infrastructure/bundling.py`` for this machine's Python and architecture, one
source only (as the asset shipped before it carried bytecode: Lambda cannot write bytecode into its
read-only ``/var/task``, so every cold start compiled every module it imported) and one with the
bytecode the bundler now compiles. Each is imported by ``python -I -S -B`` with only the asset and
the runtime-provided boto3 on ``sys.path``, as on Lambda.

A last table adds what a step does on its first call before any request: building the AWS
clients it uses (handlers build them lazily, so this moves cost from import to first call;
the totals are compared with ``import boto3`` plus building the same clients).

    .venv/bin/python bench/cold_start.py [--rounds 15] [--asset]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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

TIMED = """
import time
started = time.perf_counter()
{code}
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

ON_SYS_PATH = """
import sys
sys.path[:0] = [{asset!r}]
sys.path.append({runtime!r})
"""
"""``python -I -S`` has only the standard library: put the asset first and the runtime's boto3 last, as Lambda does."""

LAMBDA_ENV = {
    "LAMBDA_TASK_ROOT": str(ROOT),
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
}


def run(code: str, *, cache: Path | None = None, isolated: bool = False) -> float:
    """Seconds reported by ``code`` in a fresh interpreter with a Lambda-like environment."""
    env = {**os.environ, **LAMBDA_ENV}
    env.pop("POWERTOOLS_TRACE_DISABLED", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if cache is not None:
        env["PYTHONPYCACHEPREFIX"] = str(cache)
    flags = ["-I", "-S", "-B"] if isolated else []
    command = [sys.executable, *flags, "-c", code]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def build_clients(services: tuple[str, ...], *, shared: bool) -> str:
    if not services:
        return ""
    if shared:
        return "\n".join(f"lambdas.shared.aws.client({name!r})" for name in services)
    return "import boto3.session\ns = boto3.session.Session()\n" + "\n".join(f"s.client({name!r})" for name in services)


def measure(rounds: int, cache: Path) -> dict[str, dict[str, list[float]]]:
    times: dict[str, dict[str, list[float]]] = {"import": {}, "compile": {}, "floor": {}, "clients": {}}
    for module, _ in HANDLERS.values():
        run(TIMED.format(code=f"import {module}"), cache=cache)  # fills the bytecode cache, as the asset ships it
    for _ in range(rounds):
        times["import"].setdefault(BASELINE, []).append(run(TIMED.format(code=f"import {BASELINE}"), cache=cache))
        for floor, code in FLOORS.items():
            times["floor"].setdefault(floor, []).append(run(TIMED.format(code=code), cache=cache))
        for step, (module, services) in HANDLERS.items():
            times["import"].setdefault(step, []).append(run(TIMED.format(code=f"import {module}"), cache=cache))
            times["compile"].setdefault(step, []).append(run(COMPILE_ONLY.format(module=module), cache=cache))
            if services:
                baseline = f"import {BASELINE}\n" + build_clients(services, shared=False)
                times["clients"].setdefault(f"{BASELINE}+{step}", []).append(
                    run(TIMED.format(code=baseline), cache=cache)
                )
                ours = f"import {module}, lambdas.shared.aws\n" + build_clients(services, shared=True)
                times["clients"].setdefault(step, []).append(run(TIMED.format(code=ours), cache=cache))
    return times


def build_assets(scratch: Path) -> dict[str, Path]:
    """The Lambda asset for this machine's Python and architecture, as bundled without and with bytecode."""
    from infrastructure.bundling import PIP_PLATFORMS, LocalPipBundling  # the CDK toolchain, only for --asset

    architecture = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    assets: dict[str, Path] = {}
    for label, bytecode in (("source only", False), ("with bytecode", True)):
        target = scratch / label.replace(" ", "-")
        target.mkdir()
        bundler = LocalPipBundling(platform=PIP_PLATFORMS[architecture], python_version=version, bytecode=bytecode)
        bundler.try_bundle(str(target), None)
        assets[label] = target
    return assets


def measure_assets(rounds: int, assets: dict[str, Path]) -> dict[str, list[float]]:
    runtime = sysconfig.get_paths()["purelib"]  # where this virtualenv's boto3 stands in for the runtime's
    times: dict[str, list[float]] = {}
    for _ in range(rounds):
        code = ON_SYS_PATH.format(asset="", runtime=runtime) + TIMED.format(code=f"import {BASELINE}")
        times.setdefault(BASELINE, []).append(run(code, isolated=True))
        for label, asset in assets.items():
            for step, (module, _) in HANDLERS.items():
                code = ON_SYS_PATH.format(asset=str(asset), runtime=runtime) + TIMED.format(code=f"import {module}")
                times.setdefault(f"{step}|{label}", []).append(run(code, isolated=True))
    return times


def report(times: dict[str, dict[str, list[float]]], rounds: int) -> None:
    base = statistics.median(times["import"][BASELINE])
    print(f"import, fresh process, LAMBDA_TASK_ROOT set, bytecode as the asset ships it, median of {rounds} rounds")
    print(f"{'module':<14} {'median ms':>10} {'x import boto3':>15} {'+ compiling lambdas/ ms':>24}")
    print(f"{'boto3':<14} {base * 1000:>10.0f} {1.0:>15.2f}")
    for step in HANDLERS:
        median = statistics.median(times["import"][step])
        compiling = statistics.median(times["compile"][step])
        print(f"{step:<14} {median * 1000:>10.0f} {median / base:>15.2f} {compiling * 1000:>24.0f}")
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


def report_assets(times: dict[str, list[float]], labels: list[str], rounds: int) -> None:
    base = statistics.median(times[BASELINE])
    print()
    print(f"import from the bundled Lambda asset (python -I -S -B, asset + runtime boto3), median of {rounds} rounds")
    print(f"{'step':<14}" + "".join(f" {label + ' ms':>20} {'x boto3':>8}" for label in labels))
    print(f"{'boto3':<14} {base * 1000:>20.0f} {1.0:>8.2f}")
    for step in HANDLERS:
        row = f"{step:<14}"
        for label in labels:
            median = statistics.median(times[f"{step}|{label}"])
            row += f" {median * 1000:>20.0f} {median / base:>8.2f}"
        print(row)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="fresh processes per module (median taken)")
    parser.add_argument("--asset", action="store_true", help="also measure real bundled assets (needs PyPI)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="notiflow-cold-start-") as scratch:
        report(measure(args.rounds, Path(scratch) / "pycache"), args.rounds)
        if args.asset:
            assets = build_assets(Path(scratch))
            report_assets(measure_assets(args.rounds, assets), list(assets), args.rounds)


if __name__ == "__main__":
    main()
