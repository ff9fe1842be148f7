"""The one exit-code table of the `notiflow` command, printed in ``--help`` and documented in README.md."""

from __future__ import annotations

from enum import IntEnum
from typing import Final


class ExitCode(IntEnum):
    """What a `notiflow` command's exit status means, whatever the command (see MEANINGS)."""

    OK = 0
    SOME_FAILED = 1
    USAGE = 2
    REFUSED = 3
    AWS_ERROR = 4
    INTERRUPTED = 130

    @property
    def meaning(self) -> str:
        """One line on what this code says."""
        return MEANINGS[self]


MEANINGS: Final = {
    ExitCode.OK: "done: everything asked for happened (a redrive: every redriven run delivered)",
    ExitCode.SOME_FAILED: (
        "done, but a redriven run failed again or was still running when the wait ended, "
        "or runs were not tried because their host's canary failed again"
    ),
    ExitCode.USAGE: "usage error: a wrong option, or no such notification or run",
    ExitCode.REFUSED: (
        "refused, nothing done: the run cannot be redriven (delivered, rejected, running, stopped over "
        "14 days ago) or another redrive got there first"
    ),
    ExitCode.AWS_ERROR: "AWS (or the local endpoint) failed, throttled or denied a call",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}


def exit_code_table() -> str:
    """The table for ``--help`` epilogs: one line per code."""
    return "exit codes:\n" + "\n".join(f"  {code.value:<4} {code.meaning}" for code in ExitCode)
