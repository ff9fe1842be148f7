"""Helpers importable by any test: sample events and a fake Lambda context."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).parent / "events"


@dataclass
class FakeLambdaContext:
    """The attributes Powertools reads from a Lambda context (no real runtime runs in unit tests)."""

    function_name: str = "notiflow-test"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/notiflow-test"
    log_stream_name: str = "test"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def load_event(name: str) -> dict[str, Any]:
    """A sample event from tests/events/."""
    return json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))
