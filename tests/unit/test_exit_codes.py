"""One exit-code table for the whole CLI: in every --help, in the README, and what main() returns."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from notiflow.cli import build_parser, main
from notiflow.operate.exit_codes import MEANINGS, ExitCode

README = Path(__file__).resolve().parents[2] / "README.md"


def help_of(*command: str) -> str:
    parser = build_parser()
    for name in command:
        action = next(a for a in parser._actions if a.dest in ("command", "runs_command", "local_command"))
        parser = action.choices[name]  # type: ignore[index]
    return parser.format_help()


@pytest.mark.parametrize("command", [(), ("runs", "list"), ("runs", "show"), ("redrive",), ("demo",), ("local", "up")])
def test_every_help_ends_with_the_table(command: tuple[str, ...]) -> None:
    text = help_of(*command)
    table = text[text.index("exit codes:") :]
    for code in ExitCode:
        assert re.search(rf"^  {code.value} +{re.escape(MEANINGS[code][:40])}", table, re.M), (code, table)


def test_the_readme_documents_the_same_table() -> None:
    documented = dict(re.findall(r"^\| (\d+) \| (.+) \|$", README.read_text(encoding="utf-8"), re.M))
    assert {int(code): meaning for code, meaning in documented.items()} == {c.value: MEANINGS[c] for c in ExitCode}


def test_usage_errors_exit_2_as_argparse_does(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["runs", "list", "--status", "NOPE"])
    assert exited.value.code == ExitCode.USAGE
    assert main(["runs", "list", "--since", "yesterday-ish", "--table-name", "t", "--state-machine-arn", "arn:x"]) == 2
    assert "a time takes a duration like 6h" in capsys.readouterr().err
