"""The hashed lock, read back: ``requirements/<group>.txt`` as ``make lock`` exports it from ``uv.lock``.

``uv.lock`` resolves every dependency group of ``pyproject.toml`` together, so a package two groups
share has one version everywhere; ``make lock`` then exports one hashed requirements file per group.
The Lambda asset is built from ``requirements/lambda.txt`` (see infrastructure/bundling.py), and
``make install`` installs ``requirements/dev.txt`` with ``pip --require-hashes``. No CDK import here.

``python -m infrastructure.lock`` (``make lock``) re-resolves ``uv.lock`` and rewrites the exports.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from infrastructure.spec import ARCHITECTURE, RUNTIME

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
REQUIREMENTS_DIR: Final = REPO_ROOT / "requirements"
LAMBDA_REQUIREMENTS: Final = REQUIREMENTS_DIR / "lambda.txt"
DEV_REQUIREMENTS: Final = REQUIREMENTS_DIR / "dev.txt"

EXPORTS: Final[Mapping[str, tuple[str, ...]]] = {
    "lambda": ("--only-group", "lambda"),  # the asset's inputs only, not the CLI's own dependencies
    "local": ("--group", "local"),  # the CLI and the embedded stack
    "infra": ("--group", "infra"),  # the CLI and the CDK toolchain
    "dev": ("--all-groups",),  # everything: what make install installs
}
"""requirements/<name>.txt -> the ``uv export`` options that write it."""
EXPORT_OPTIONS: Final = ("export", "--frozen", "--no-emit-project", "--format", "requirements-txt")

_MACHINES: Final = {"arm64": "aarch64", "x86_64": "x86_64"}
LAMBDA_MARKERS: Final[Mapping[str, str]] = {
    "implementation_name": "cpython",
    "implementation_version": RUNTIME.removeprefix("python") + ".0",
    "os_name": "posix",
    "platform_machine": _MACHINES[ARCHITECTURE],
    "platform_python_implementation": "CPython",
    "platform_release": "",
    "platform_system": "Linux",
    "platform_version": "",
    "python_full_version": RUNTIME.removeprefix("python") + ".0",
    "python_version": RUNTIME.removeprefix("python"),
    "sys_platform": "linux",
}
"""Environment markers as the Lambda runtime evaluates them (the lock is universal: it keeps markers)."""


@dataclass(frozen=True)
class LockedRequirement:
    """One pinned package of an exported lock: exact version, environment marker, accepted file hashes."""

    name: str
    version: str
    marker: Marker | None
    hashes: tuple[str, ...]

    def applies_to(self, environment: Mapping[str, str]) -> bool:
        """Whether an installer on ``environment`` installs this line."""
        return self.marker is None or self.marker.evaluate(dict(environment))

    def line(self) -> str:
        """The line for ``pip install --require-hashes -r`` (the marker already evaluated away)."""
        return " ".join([f"{self.name}=={self.version}", *(f"--hash={digest}" for digest in self.hashes)])


def read_lock(path: Path) -> list[LockedRequirement]:
    """Parse a ``uv export`` requirements file: ``name==version ; marker`` lines with ``--hash`` options."""
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    locked = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        spec, *options = line.split(" --hash=")
        requirement = Requirement(spec.strip())
        pins = [s for s in requirement.specifier if s.operator == "=="]
        if len(pins) != 1 or not options:
            raise ValueError(f"{path.name}: {spec.strip()!r} is not one hashed ==pin")
        locked.append(
            LockedRequirement(
                name=canonicalize_name(requirement.name),
                version=pins[0].version,
                marker=requirement.marker,
                hashes=tuple(option.split()[0] for option in options),
            )
        )
    return locked


def locked_versions(path: Path, environment: Mapping[str, str] | None = None) -> dict[str, str]:
    """Package -> version for the lines that apply to ``environment`` (default: every line)."""
    return {
        entry.name: entry.version for entry in read_lock(path) if environment is None or entry.applies_to(environment)
    }


def uv_command() -> str:
    """The uv installed next to this Python (the dev group has it), else one on PATH."""
    beside = Path(sys.executable).with_name("uv")
    found = str(beside) if beside.exists() else shutil.which("uv")
    if found is None:
        raise SystemExit("uv is not installed: run make install first")
    return found


def export(name: str, uv: str | None = None) -> str:
    """The text ``requirements/<name>.txt`` must hold for the current ``uv.lock``."""
    command = [uv or uv_command(), *EXPORT_OPTIONS, *EXPORTS[name], "--quiet"]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout  # noqa: S603


def main(argv: Sequence[str] | None = None) -> int:
    """Re-resolve uv.lock for every group, then export (``--check``: only verify both are current).

    Other arguments go to ``uv lock``, e.g. ``--upgrade`` or ``--upgrade-package moto``.
    """
    args = list(argv if argv is not None else sys.argv[1:])
    check = "--check" in args
    uv = uv_command()
    lock = [uv, "lock", "--check", "--offline"] if check else [uv, "lock", *args]
    subprocess.run(lock, cwd=REPO_ROOT, check=True)  # noqa: S603
    stale = []
    for name in EXPORTS:
        path = REQUIREMENTS_DIR / f"{name}.txt"
        text = export(name, uv)
        if check and (not path.exists() or path.read_text(encoding="utf-8") != text):
            stale.append(path.name)
        elif not check:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale: {', '.join(stale)}; run make lock", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
