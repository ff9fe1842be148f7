"""Where the in-process Lambdas' output goes when Notiflow runs them on this machine.

On AWS each function writes its Powertools log lines and EMF metric records to its own log
group. Locally the five handlers run in threads of one process, so without care their JSON lands
on the same stdout as the command's own messages, and two threads' records can share a line
(``print`` writes the text and the newline separately). :func:`lambda_output_to` sends it all to a
file instead, one whole record per line.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Final, TextIO, cast

DEMO_LOG: Final = Path(".notiflow") / "demo" / "lambdas.log"
LOCAL_UP_LOG: Final = Path(".notiflow") / "local" / "lambdas.log"
ON_STDOUT: Final = "stdout"


def destination(value: str) -> Path | None:
    """``--lambda-logs``: a file path, or ``stdout`` to leave the Lambdas' output on the terminal (None)."""
    return None if value == ON_STDOUT else Path(value)


class LineWriter(io.TextIOBase):
    """A text stream that hands whole lines to ``target``, never interleaving two threads' lines."""

    def __init__(self, target: TextIO) -> None:
        super().__init__()
        self._target = target
        self._lock = threading.Lock()
        self._pending = threading.local()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        """Buffer per thread; write every completed line at once under the lock."""
        buffered = getattr(self._pending, "text", "") + text
        complete, newline, rest = buffered.rpartition("\n")
        self._pending.text = rest
        if newline:
            with self._lock:
                self._target.write(complete + newline)
                self._target.flush()
        return len(text)

    def flush(self) -> None:
        """Write this thread's unfinished line too (at exit nothing is held back)."""
        rest = getattr(self._pending, "text", "")
        self._pending.text = ""
        with self._lock:
            if rest:
                self._target.write(rest)
            self._target.flush()


def _powertools_handler() -> logging.StreamHandler[TextIO]:
    from lambdas.shared.observability import logger

    handler = logger.registered_handler
    if not isinstance(handler, logging.StreamHandler):
        raise TypeError(f"the Lambdas' logger writes through {type(handler).__name__}, not a stream")
    return handler


@contextlib.contextmanager
def lambda_output_to(path: Path) -> Iterator[Path]:
    """While open, the Lambdas' log lines and EMF metrics go to ``path`` (truncated first), one per line.

    The process stdout is redirected too (Powertools prints metrics with ``print``), so callers
    write their own messages to a stream they took before entering.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = _powertools_handler()
    with path.open("w", encoding="utf-8") as file:
        stream = LineWriter(file)
        previous = handler.setStream(cast(TextIO, stream))
        try:
            with contextlib.redirect_stdout(stream), warnings.catch_warnings():
                # Powertools warns on every invocation that publishes no metric; the file says enough.
                warnings.filterwarnings("ignore", category=UserWarning, module="aws_lambda_powertools")
                yield path
        finally:
            stream.flush()
            if previous is not None:
                handler.setStream(previous)
