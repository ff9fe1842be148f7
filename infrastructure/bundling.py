"""The one Lambda code asset, bundled locally with pip: no Docker, and the asset hash is the output's.

The asset holds the ``lambdas`` package (so handler strings are ``lambdas.<step>.handler.lambda_handler``
exactly as locally) plus every package of the Lambda dependency group, as locked and hashed in
``requirements/lambda.txt``, except what the Lambda runtime itself provides (boto3, botocore,
s3transfer). Powertools is bundled too, not taken from AWS's Powertools layer: the layer's versions
(Powertools, pydantic) are AWS's choice, and the tests would run another version than the one
deployed; from the lock, they run the same. Wheels are chosen for the deployed runtime and
architecture, not for the machine that runs the synth, and verified against the lock's hashes, so
the same commit always yields the same asset.

The asset also carries bytecode, compiled by an interpreter of the runtime's Python version (this
one when it matches, else ``python3.13`` or whichever the runtime names, from ``PATH``). Lambda
cannot write bytecode into its read-only ``/var/task``, so without it every cold start compiles the
source of every module it imports (pydantic, requests and Powertools included): that makes each
step's import about twice as slow, deliver's three times (``bench/cold_start.py --asset``). The
files are hash-based and unchecked (PEP 552: no timestamps, never compared with a source that
cannot change), name their source by its path on Lambda, and are compiled with a fixed hash seed,
so the same commit still yields the same asset. Without such an interpreter the synth says so and
the asset ships source only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final, cast

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

from infrastructure.functions import runtime
from infrastructure.lock import LAMBDA_MARKERS, LAMBDA_REQUIREMENTS, LockedRequirement, read_lock
from infrastructure.spec import ARCHITECTURE, RUNTIME

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
LAMBDAS_DIR: Final = REPO_ROOT / "lambdas"

PIP_PLATFORMS: Final = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
PIP_PLATFORM: Final = PIP_PLATFORMS[ARCHITECTURE]
PYTHON_VERSION: Final = RUNTIME.removeprefix("python")
RUNTIME_PROVIDED: Final = frozenset({"boto3", "botocore", "s3transfer"})
"""In every Python Lambda runtime already; bundling botocore would add tens of megabytes to each cold start."""

PIP_FAILED: Final = "pip could not install"
LAMBDA_TASK_ROOT: Final = "/var/task"
"""Where Lambda unpacks the asset: the path the bytecode names its sources by (tracebacks)."""
NO_BYTECODE: Final = "the Lambda asset ships source only"
_SKIPPED_SOURCES: Final = ("__pycache__", "*.pyc", "*.pyo", "tests")


def bundled_requirements(
    lock: Path = LAMBDA_REQUIREMENTS, environment: Mapping[str, str] = LAMBDA_MARKERS
) -> tuple[LockedRequirement, ...]:
    """The locked Lambda group as the runtime needs it: markers evaluated there, runtime packages left out."""
    return tuple(
        entry for entry in read_lock(lock) if entry.applies_to(environment) and entry.name not in RUNTIME_PROVIDED
    )


class BundlingError(RuntimeError):
    """The asset could not be built; the message says why and how to check offline instead."""


@jsii.implements(cdk.ILocalBundling)
class LocalPipBundling:
    """``pip install --target`` into the asset directory, then copy the ``lambdas`` package next to it."""

    def __init__(
        self,
        *,
        requirements: Sequence[LockedRequirement] | None = None,
        source: Path = LAMBDAS_DIR,
        python_version: str = PYTHON_VERSION,
        platform: str = PIP_PLATFORM,
        pip_options: Sequence[str] = (),
        bytecode: bool = True,
    ) -> None:
        self.requirements = bundled_requirements() if requirements is None else tuple(requirements)
        self.source = source
        self.python_version = python_version
        self.platform = platform
        self.pip_options = tuple(pip_options)
        self.bytecode = bytecode

    def try_bundle(self, output_dir: str, options: cdk.BundlingOptions | None) -> bool:
        """Called by CDK instead of Docker; raising stops the synth with our message."""
        target = Path(output_dir)
        self.install_requirements(target)
        self.copy_sources(target)
        if self.bytecode:
            self.compile_bytecode(target)
        return True

    def compiler(self) -> str | None:
        """An interpreter of the runtime's Python version: this one when it matches, else one on PATH."""
        if f"{sys.version_info.major}.{sys.version_info.minor}" == self.python_version:
            return sys.executable
        candidate = shutil.which(f"python{self.python_version}")
        if candidate is None:
            return None
        probe = [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]
        answer = subprocess.run(probe, capture_output=True, text=True, check=False)  # noqa: S603
        return candidate if answer.returncode == 0 and answer.stdout.strip() == self.python_version else None

    def compile_bytecode(self, target: Path) -> None:
        """Compile every module of the asset as the runtime loads it; without an interpreter, warn and ship source."""
        compiler = self.compiler()
        if compiler is None:
            print(
                f"warning: {NO_BYTECODE}: no Python {self.python_version} (the runtime's) to compile it with, so "
                f"Lambda compiles every module on each cold start. Put python{self.python_version} on PATH and "
                "synth again.",
                file=sys.stderr,
            )
            return
        command = [compiler, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash"]
        command += ["-s", str(target), "-p", LAMBDA_TASK_ROOT, str(target)]
        environment = {**os.environ, "PYTHONHASHSEED": "0"}  # set and frozenset constants marshal in one order
        result = subprocess.run(command, capture_output=True, text=True, check=False, env=environment)  # noqa: S603
        if result.returncode != 0:
            said = (result.stdout + result.stderr).strip().splitlines()[-15:]
            raise BundlingError(
                f"compileall could not compile the Lambda asset with {compiler} (exit {result.returncode}).\n"
                + "\n".join(f"  compileall: {line}" for line in said)
            )

    def pip_command(self, target: Path, requirements_file: Path) -> list[str]:
        """The pip invocation: wheels for the Lambda platform only, no bytecode, every file hash-checked."""
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile"]
        command += ["--target", str(target), "--platform", self.platform, "--implementation", "cp"]
        command += ["--python-version", self.python_version, "--only-binary=:all:"]
        command += ["--require-hashes", "--no-deps"]
        return [*command, *self.pip_options, "--requirement", str(requirements_file)]

    def install_requirements(self, target: Path) -> None:
        """Install the locked wheels, dropping what would make the output differ between machines."""
        if not self.requirements:
            return
        with tempfile.TemporaryDirectory(prefix="notiflow-bundle-") as scratch:
            requirements_file = Path(scratch) / "lambda-runtime.txt"
            requirements_file.write_text("".join(entry.line() + "\n" for entry in self.requirements), encoding="utf-8")
            command = self.pip_command(target, requirements_file)
            result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            said = (result.stderr or result.stdout).strip().splitlines()[-15:]
            names = ", ".join(f"{entry.name}=={entry.version}" for entry in self.requirements)
            raise BundlingError(
                f"{PIP_FAILED} {names} for python{self.python_version} "
                f"({self.platform}) into the Lambda asset (exit {result.returncode}). A deployable asset needs "
                "PyPI; for a check without it run `python -m infrastructure.synth --skip-bundling`.\n"
                + "\n".join(f"  pip: {line}" for line in said)
            )
        # Console scripts carry this machine's interpreter path, and RECORD lists their hashes.
        shutil.rmtree(target / "bin", ignore_errors=True)
        for record in target.glob("*.dist-info/RECORD"):
            record.unlink()

    def copy_sources(self, target: Path) -> None:
        """Copy the ``lambdas`` package as a package, without caches or tests."""
        shutil.copytree(
            self.source,
            target / self.source.name,
            ignore=shutil.ignore_patterns(*_SKIPPED_SOURCES),
            dirs_exist_ok=True,
        )


def lambda_code(bundling: LocalPipBundling | None = None) -> lambda_.Code:
    """The shared code asset; CDK skips bundling for stacks outside ``aws:cdk:bundling-stacks`` (tests)."""
    return lambda_.Code.from_asset(
        str(LAMBDAS_DIR),
        asset_hash_type=cdk.AssetHashType.OUTPUT,
        bundling=cdk.BundlingOptions(
            image=runtime(RUNTIME).bundling_image,
            local=cast(cdk.ILocalBundling, bundling or LocalPipBundling()),  # jsii.implements is not seen by mypy
        ),
    )
