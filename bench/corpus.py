"""The bad-input corpus: one data file per hostile SQS message, with the rejection it must end in.

Each file in ``tests/corpus/messages/`` (``NNN-slug.msg``, or ``.msg.gz`` when the body is large) has a short
header, a blank line, then the message body exactly as it goes on the queue::

    expect: scheme 'ftp' is not allowed      <- a fragment of the recorded failureReason
    about: why this message is in the corpus
    record: "заказ-1"                        <- optional: the record's key (a JSON string)

Without ``record`` the body has no usable notificationId, so the record is keyed by the SQS
message id (``sqs-<messageId>``), as ingest keys a run it cannot name. The corpus is data so
that anyone can add a case without touching code; ``bench/chaos.py`` mixes it into its run too.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

MESSAGES_DIR: Final = Path(__file__).resolve().parents[1] / "tests" / "corpus" / "messages"
_FIELDS: Final = frozenset({"expect", "about", "record"})


@dataclass(frozen=True)
class CorpusCase:
    """One hostile message and what it must end as."""

    name: str
    body: str
    expect: str
    about: str
    record: str | None

    def record_key(self, message_id: str) -> str:
        """The notificationId the record is written under, given the SQS message id it was sent as."""
        return self.record if self.record is not None else f"sqs-{message_id}"


def parse_case(name: str, text: str) -> CorpusCase:
    """Read one corpus file's text; a malformed file raises ValueError naming it."""
    head, separator, body = text.partition("\n\n")
    if not separator:
        raise ValueError(f"{name}: no blank line between the header and the body")
    fields: dict[str, str] = {}
    for line in head.splitlines():
        key, _, value = line.partition(": ")
        if key not in _FIELDS or not value:
            raise ValueError(f"{name}: unexpected header line {line!r}")
        fields[key] = value
    if "expect" not in fields or "about" not in fields:
        raise ValueError(f"{name}: 'expect' and 'about' are required")
    record = json.loads(fields["record"]) if "record" in fields else None
    if record is not None and not isinstance(record, str):
        raise ValueError(f"{name}: record must be a JSON string")
    return CorpusCase(name=name, body=body, expect=fields["expect"], about=fields["about"], record=record)


def load_corpus(directory: Path = MESSAGES_DIR) -> list[CorpusCase]:
    """Every case in ``directory``, in file-name order."""
    cases = []
    for path in sorted(directory.iterdir()):
        if path.name.endswith(".msg"):
            text = path.read_text(encoding="utf-8")
            name = path.name.removesuffix(".msg")
        elif path.name.endswith(".msg.gz"):
            text = gzip.decompress(path.read_bytes()).decode("utf-8")
            name = path.name.removesuffix(".msg.gz")
        else:
            continue
        cases.append(parse_case(name, text))
    return cases
