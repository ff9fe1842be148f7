"""The one Lambda code asset, bundled locally with pip: no Docker, and the asset hash is the output's.

The asset holds the ``lambdas`` package (so handler strings are ``lambdas.<step>.handler.lambda_handler``
exactly as locally) plus the wheels that neither the Lambda runtime (boto3) nor the AWS-managed
Powertools layer (Powertools, pydantic v2, aws-xray-sdk) provides. Wheels are chosen for the
deployed runtime and architecture, not for the machine that runs the synth, and pinned by
``constraints.txt`` so the same commit always yields the same asset hash.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

from infrastructure.functions import runtime
from infrastructure.spec import ARCHITECTURE, RUNTIME

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
LAMBDAS_DIR: Final = REPO_ROOT / "lambdas"
CONSTRAINTS_FILE: Final = REPO_ROOT / "constraints.txt"

PIP_PLATFORMS: Final = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
PIP_PLATFORM: Final = PIP_PLATFORMS[ARCHITECTURE]
PYTHON_VERSION: Final = RUNTIME.removeprefix("python")
BUNDLED_REQUIREMENTS: Final = ("requests",)
"""Imported by the Lambdas but absent from the runtime and the Powertools layer."""

PIP_FAILED: Final = "pip could not install"
_SKIPPED_SOURCES: Final = ("__pycache__", "*.pyc", "*.pyo", "tests")


class BundlingError(RuntimeError):
    """The asset could not be built; the message says why and how to check offline instead."""


@jsii.implements(cdk.ILocalBundling)
class LocalPipBundling:
    """``pip install --target`` into the asset directory, then copy the ``lambdas`` package next to it."""

    def __init__(
        self,
        *,
        requirements: Sequence[str] = BUNDLED_REQUIREMENTS,
        source: Path = LAMBDAS_DIR,
        constraints: Path | None = CONSTRAINTS_FILE,
        python_version: str = PYTHON_VERSION,
        platform: str = PIP_PLATFORM,
        pip_options: Sequence[str] = (),
    ) -> None:
        self.requirements = tuple(requirements)
        self.source = source
        self.constraints = constraints if constraints is not None and constraints.is_file() else None
        self.python_version = python_version
        self.platform = platform
        self.pip_options = tuple(pip_options)

    def try_bundle(self, output_dir: str, options: cdk.BundlingOptions) -> bool:
        """Called by CDK instead of Docker; raising stops the synth with our message."""
        target = Path(output_dir)
        self.install_requirements(target)
        self.copy_sources(target)
        return True

    def pip_command(self, target: Path) -> list[str]:
        """The pip invocation: wheels for the Lambda platform only, no bytecode, pinned by the constraints."""
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile"]
        command += ["--target", str(target), "--platform", self.platform, "--implementation", "cp"]
        command += ["--python-version", self.python_version, "--only-binary=:all:"]
        if self.constraints is not None:
            command += ["--constraint", str(self.constraints)]
        return [*command, *self.pip_options, *self.requirements]

    def install_requirements(self, target: Path) -> None:
        """Install the third-party wheels, dropping what would make the output differ between machines."""
        if not self.requirements:
            return
        result = subprocess.run(self.pip_command(target), capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            said = (result.stderr or result.stdout).strip().splitlines()[-15:]
            raise BundlingError(
                f"{PIP_FAILED} {', '.join(self.requirements)} for python{self.python_version} "
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
        bundling=cdk.BundlingOptions(image=runtime(RUNTIME).bundling_image, local=bundling or LocalPipBundling()),
    )
