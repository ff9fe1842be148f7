"""Local bundling of the Lambda asset with pip, exercised offline against a wheel built by the test."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from infrastructure.bundling import (
    BUNDLED_REQUIREMENTS,
    CONSTRAINTS_FILE,
    PIP_PLATFORM,
    BundlingError,
    LocalPipBundling,
)
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


def test_bundling_installs_wheels_and_copies_the_package_without_clutter(tmp_path):
    # Given a local wheel index (no network) and a lambdas package with caches and tests in it
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    build_wheel(wheels)
    bundler = LocalPipBundling(
        requirements=("notiflowprobe",),
        source=source_tree(tmp_path / "src"),
        pip_options=("--no-index", "--find-links", str(wheels)),
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


def test_a_failing_pip_stops_the_synth_with_a_message_saying_what_to_do(tmp_path):
    # Given a requirement that cannot be found (and no index to look in)
    bundler = LocalPipBundling(requirements=("notiflow-no-such-package==0",), pip_options=("--no-index",))
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
    command = bundler.pip_command(tmp_path)
    # Then it targets the deployed Python and architecture, binary wheels only, pinned by constraints.txt
    assert command[command.index("--python-version") + 1] == RUNTIME.removeprefix("python")
    assert command[command.index("--platform") + 1] == PIP_PLATFORM
    assert "--only-binary=:all:" in command
    assert "--no-compile" in command
    assert command[command.index("--constraint") + 1] == str(CONSTRAINTS_FILE)
    assert command[command.index("--target") + 1] == str(tmp_path)
    assert command[-len(BUNDLED_REQUIREMENTS) :] == list(BUNDLED_REQUIREMENTS)


def test_the_real_lambdas_package_lands_where_the_handler_strings_point(tmp_path):
    # Given the repository's lambdas package
    # When it is copied into an asset
    LocalPipBundling().copy_sources(tmp_path)
    # Then lambdas.<step> is importable from the asset root, as handler_path assumes
    for step in (STEP_INGEST, *WORKFLOW_STEPS):
        assert (tmp_path / "lambdas" / step / "handler.py").is_file()
    assert (tmp_path / "lambdas" / "shared" / "constants.py").is_file()
