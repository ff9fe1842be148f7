"""Local bundling of the Lambda asset with pip, exercised offline against a wheel built by the test."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import marshal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from infrastructure.bundling import (
    LAMBDA_TASK_ROOT,
    NO_BYTECODE,
    PIP_PLATFORM,
    RUNTIME_PROVIDED,
    BundlingError,
    LocalPipBundling,
    bundled_requirements,
)
from infrastructure.lock import LAMBDA_MARKERS, LAMBDA_REQUIREMENTS, LockedRequirement, read_lock
from infrastructure.spec import RUNTIME
from lambdas.shared.constants import STEP_INGEST, WORKFLOW_STEPS


def build_wheel(directory: Path) -> Path:
    """A pure-Python wheel with a console script, so bundling has something machine-specific to drop."""
    wheel = directory / "notiflowprobe-1.0-py3-none-any.whl"
    info = "notiflowprobe-1.0.dist-info"
    files = {
        "notiflowprobe/__init__.py": "def main() -> None:\n    print('probe')\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: notiflowprobe\nVersion: 1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: notiflow-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": "[console_scripts]\nnotiflowprobe = notiflowprobe:main\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return wheel


def source_tree(root: Path) -> Path:
    """A lambdas package with the clutter a working copy accumulates."""
    source = root / "lambdas"
    (source / "deliver" / "__pycache__").mkdir(parents=True)
    (source / "tests").mkdir()
    (source / "__init__.py").write_text("")
    (source / "deliver" / "__init__.py").write_text("")
    (source / "deliver" / "handler.py").write_text("def lambda_handler(event, context):\n    return event\n")
    (source / "deliver" / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"\x00")
    (source / "tests" / "test_x.py").write_text("")
    return source


def locked(wheel: Path, digest: str | None = None) -> LockedRequirement:
    """A lock line for the probe wheel, with its real sha256 unless another digest is given."""
    real = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return LockedRequirement("notiflowprobe", "1.0", None, (f"sha256:{digest or real}",))


def test_bundling_installs_wheels_and_copies_the_package_without_clutter(tmp_path):
    # Given a local wheel index (no network), its lock line, and a lambdas package with caches and tests in it
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel = build_wheel(wheels)
    bundler = LocalPipBundling(
        requirements=(locked(wheel),),
        source=source_tree(tmp_path / "src"),
        pip_options=("--no-index", "--find-links", str(wheels)),
        bytecode=False,
    )
    asset = tmp_path / "asset"
    asset.mkdir()
    # When CDK asks for a local bundle
    bundled = bundler.try_bundle(str(asset), None)
    # Then the wheel and the package sit at the asset root, without anything machine- or run-specific
    assert bundled is True
    assert (asset / "notiflowprobe" / "__init__.py").is_file()
    assert (asset / "lambdas" / "deliver" / "handler.py").is_file()
    assert not (asset / "bin").exists()
    assert not list(asset.glob("*.dist-info/RECORD"))
    assert not list(asset.rglob("__pycache__"))
    assert not list(asset.rglob("*.pyc"))
    assert not (asset / "lambdas" / "tests").exists()


def test_a_wheel_that_does_not_match_the_lock_is_refused(tmp_path):
    # Given a wheel whose content differs from the hash the lock recorded
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel = build_wheel(wheels)
    bundler = LocalPipBundling(
        requirements=(locked(wheel, digest="0" * 64),), pip_options=("--no-index", "--find-links", str(wheels))
    )
    # When the asset is bundled
    # Then nothing is installed and the synth stops naming the package
    with pytest.raises(BundlingError, match=r"notiflowprobe==1\.0"):
        bundler.try_bundle(str(tmp_path / "asset"), None)
    assert not (tmp_path / "asset" / "notiflowprobe").exists()


def test_a_failing_pip_stops_the_synth_with_a_message_saying_what_to_do(tmp_path):
    # Given a requirement that cannot be found (and no index to look in)
    missing = LockedRequirement("notiflow-no-such-package", "0", None, ("sha256:" + "0" * 64,))
    bundler = LocalPipBundling(requirements=(missing,), pip_options=("--no-index",))
    # When the asset is bundled
    # Then the error names the package, the target platform, pip's own words and the offline alternative
    with pytest.raises(BundlingError) as raised:
        bundler.try_bundle(str(tmp_path), None)
    message = str(raised.value)
    assert "notiflow-no-such-package==0" in message
    assert PIP_PLATFORM in message
    assert "pip: " in message
    assert "--skip-bundling" in message


def test_pip_picks_wheels_for_the_lambda_runtime_not_for_this_machine(tmp_path):
    # Given the default bundler
    bundler = LocalPipBundling()
    # When its pip command is built
    command = bundler.pip_command(tmp_path, tmp_path / "locked.txt")
    # Then it targets the deployed Python and architecture, binary wheels only, every file checked against the lock
    assert command[command.index("--python-version") + 1] == RUNTIME.removeprefix("python")
    assert command[command.index("--platform") + 1] == PIP_PLATFORM
    assert "--only-binary=:all:" in command
    assert "--no-compile" in command
    assert "--require-hashes" in command
    assert "--no-deps" in command
    assert command[command.index("--target") + 1] == str(tmp_path)
    assert command[-2:] == ["--requirement", str(tmp_path / "locked.txt")]


def test_the_asset_holds_the_locked_lambda_group_minus_what_the_runtime_provides():
    # Given the Lambda group's lock
    locked = {entry.name: entry for entry in read_lock(LAMBDA_REQUIREMENTS) if entry.applies_to(LAMBDA_MARKERS)}
    # When the default bundler picks its requirements
    bundled = {entry.name: entry for entry in LocalPipBundling().requirements}
    # Then it installs every locked package the runtime lacks, Powertools and pydantic included, at the locked pins
    assert set(bundled) == set(locked) - RUNTIME_PROVIDED
    assert {"aws-lambda-powertools", "aws-xray-sdk", "pydantic", "pydantic-core", "requests"} <= set(bundled)
    assert not set(bundled) & RUNTIME_PROVIDED
    assert all(bundled[name] == locked[name] for name in bundled)


def test_the_tests_run_the_powertools_and_pydantic_that_deploy():
    # Given the versions the asset is built from
    bundled = {entry.name: entry.version for entry in bundled_requirements()}
    # When the versions installed in this test environment are read
    # Then they are the same: the tests exercise exactly what deploys (no layer with versions of its own)
    for package in ("aws-lambda-powertools", "pydantic", "pydantic-core", "requests", "aws-xray-sdk"):
        assert importlib.metadata.version(package) == bundled[package], package


def test_markers_are_evaluated_for_the_lambda_runtime_not_for_this_machine(tmp_path):
    # Given a lock with lines for other Pythons and machines, as a universal lock has
    lock = tmp_path / "lambda.txt"
    lock.write_text(
        "old-backport==1.0 ; python_full_version < '3.12' \\\n    --hash=sha256:" + "1" * 64 + "\n"
        "arm-only==2.0 ; platform_machine == 'aarch64' \\\n    --hash=sha256:" + "2" * 64 + "\n"
        "    # via notiflow:lambda\n"
        "x86-only==3.0 ; platform_machine == 'x86_64' --hash=sha256:" + "3" * 64 + "\n"
        "botocore==1.0 --hash=sha256:" + "4" * 64 + "\n"
    )
    # When the bundled requirements are read from it
    names = [entry.name for entry in bundled_requirements(lock)]
    # Then only what python3.13 on arm64 installs is bundled, and the runtime's botocore is left out
    assert names == ["arm-only"]


def test_the_real_lambdas_package_lands_where_the_handler_strings_point(tmp_path):
    # Given the repository's lambdas package
    # When it is copied into an asset
    LocalPipBundling().copy_sources(tmp_path)
    # Then lambdas.<step> is importable from the asset root, as handler_path assumes
    for step in (STEP_INGEST, *WORKFLOW_STEPS):
        assert (tmp_path / "lambdas" / step / "handler.py").is_file()
    assert (tmp_path / "lambdas" / "shared" / "constants.py").is_file()


THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def _offline_bundler(tmp_path: Path, python_version: str) -> LocalPipBundling:
    wheels = tmp_path / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    wheel = build_wheel(wheels)
    return LocalPipBundling(
        requirements=(locked(wheel),),
        source=source_tree(tmp_path / "src"),
        python_version=python_version,
        pip_options=("--no-index", "--find-links", str(wheels)),
    )


def _bundle(bundler: LocalPipBundling, asset: Path) -> Path:
    asset.mkdir()
    assert bundler.try_bundle(str(asset), None) is True
    return asset


def test_the_asset_carries_unchecked_bytecode_naming_its_sources_by_their_lambda_path(tmp_path):
    # Given a bundler for a runtime whose Python this machine has
    bundler = _offline_bundler(tmp_path, THIS_PYTHON)
    # When the asset is bundled
    asset = _bundle(bundler, tmp_path / "asset")
    # Then every module has bytecode beside it, hash-based and unchecked (PEP 552 flags 0b01: Lambda's
    # /var/task never changes, so nothing is compared at import), naming its source as Lambda sees it
    sources = sorted(asset.rglob("*.py"))
    assert {path.relative_to(asset).as_posix() for path in sources} >= {
        "lambdas/deliver/handler.py",
        "notiflowprobe/__init__.py",
    }
    for source in sources:
        cached = Path(importlib.util.cache_from_source(str(source)))
        data = cached.read_bytes()
        assert data[:4] == importlib.util.MAGIC_NUMBER
        assert int.from_bytes(data[4:8], "little") == 0b01
        code = marshal.loads(data[16:])  # noqa: S302 - bytecode this test just compiled
        assert code.co_filename == f"{LAMBDA_TASK_ROOT}/{source.relative_to(asset).as_posix()}"
    # And the stale bytecode of the working copy was not carried over: the handler's is real
    handler = Path(importlib.util.cache_from_source(str(asset / "lambdas" / "deliver" / "handler.py")))
    assert handler.read_bytes() != b"\x00"


def test_the_runtime_runs_the_shipped_bytecode_without_compiling(tmp_path):
    # Given a bundled asset whose handler source is then changed (unchecked bytecode is never compared with it)
    asset = _bundle(_offline_bundler(tmp_path, THIS_PYTHON), tmp_path / "asset")
    handler = asset / "lambdas" / "deliver" / "handler.py"
    handler.write_text("def lambda_handler(event, context):\n    return 'compiled from source'\n")
    # When a fresh interpreter that may not write bytecode imports the handler from it, as Lambda does
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import lambdas.deliver.handler as h\n"
        "print(h.lambda_handler({'ok': 1}, None))"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", probe, str(asset)], capture_output=True, text=True, check=True
    )
    # Then it ran the shipped bytecode, not the source
    assert done.stdout.strip() == "{'ok': 1}"


def test_the_same_sources_give_the_same_bytecode(tmp_path):
    # Given two bundles of the same sources, in different directories
    first = _bundle(_offline_bundler(tmp_path / "a", THIS_PYTHON), tmp_path / "a" / "asset")
    second = _bundle(_offline_bundler(tmp_path / "b", THIS_PYTHON), tmp_path / "b" / "asset")

    # Then their bytecode is byte for byte the same (the asset hash is the output's)
    def pycs(root: Path) -> dict[str, bytes]:
        return {path.relative_to(root).as_posix(): path.read_bytes() for path in root.rglob("*.pyc")}

    assert pycs(first)
    assert pycs(first) == pycs(second)


def test_without_the_runtimes_python_the_asset_ships_source_and_the_synth_says_so(tmp_path, capfd):
    # Given a bundler for a Python this machine does not have
    bundler = _offline_bundler(tmp_path, "3.99")
    # When the asset is bundled
    asset = _bundle(bundler, tmp_path / "asset")
    # Then it holds source only, and the synth output says why and what to do
    assert not list(asset.rglob("*.pyc"))
    said = capfd.readouterr().err
    assert NO_BYTECODE in said
    assert "python3.99" in said
