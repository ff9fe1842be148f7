"""The local console: what the Step Functions console shows for Notiflow runs, served from 127.0.0.1.

A small threaded HTTP server with a JSON API over a :class:`notiflow.operate.runs.RunStore` and a
static page (vanilla JS, inline SVG, nothing fetched from elsewhere). Everything it shows is
read back from the execution history and the DynamoDB record, the same sources as the CLI,
and a redrive goes through the Step Functions ``RedriveExecution`` API, so the console
behaves the same against the embedded stack and against AWS.

    with ConsoleServer(store) as console:
        print(console.url)
"""

from __future__ import annotations

import base64
import contextlib
import json
import sys
import threading
import time
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Final, TextIO
from urllib.parse import parse_qs, quote, unquote, urlsplit

from botocore.exceptions import ClientError

from lambdas.shared.clock import utc_iso
from lambdas.shared.constants import ExecutionStatus, RecordStatus
from lambdas.shared.models import notification_id_of_input
from lambdas.shared.record import NotificationRecord
from notiflow.console.graph import layout
from notiflow.operate.queries import (
    INDEXED,
    RUN_STATUSES_OF,
    belongs_outside_index,
    describe_all,
    resolve_records,
)
from notiflow.operate.redrive import Redriver, RedriveRefusedError
from notiflow.operate.runs import (
    RunStore,
    earlier_failures,
    history_rows,
    record_json,
    run_passes,
    state_colours,
    summarize_history,
)
from notiflow.shared.jsonutil import json_default
from notiflow.shared.loopback import LoopbackHTTPServer

STATIC_DIR: Final = Path(__file__).with_name("static")
STATIC_FILES: Final = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
_RUN_STATUSES: Final = frozenset(ExecutionStatus)
_RECORD_STATUSES: Final = frozenset(RecordStatus)
RECORD_FILTER_PREFIX: Final = "RECORD:"
"""``?status=RECORD:FAILED`` filters on the record's status, ``?status=FAILED`` on the run's."""
PAGE_SIZE: Final = 50
"""Runs per list page (a ListExecutions page, or a page of the operator index)."""
MAX_PAGE_SIZE: Final = 200
RUNNING_DESCRIBE_SECONDS: Final = 3.0
DESCRIPTION_CACHE_SIZE: Final = 5000
SEARCH_WINDOW: Final = 1000
"""Search by id looks at the exact id, and at the ids of the newest this many runs (one ListExecutions call)."""
CLIENT_HEADER: Final = "X-Notiflow-Console"
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class ApiError(Exception):
    """An error answered as JSON with an HTTP status."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def _loads(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _seconds_between(start: datetime | None, stop: datetime | None) -> float | None:
    if start is None:
        return None
    return round(((stop or datetime.now(UTC)) - start).total_seconds(), 3)


def _encode_token(kind: str, value: Any) -> str:
    raw = json.dumps({"kind": kind, "value": value}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str | None, kind: str) -> Any:
    """The value inside a page token this console issued for ``kind`` of listing; 400 for anything else."""
    if not token:
        return None
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, TypeError):
        raise ApiError(HTTPStatus.BAD_REQUEST, "malformed page token") from None
    if not isinstance(decoded, dict) or decoded.get("kind") != kind:
        raise ApiError(HTTPStatus.BAD_REQUEST, "the page token belongs to another listing")
    return decoded.get("value")


class Console:
    """The console's read and redrive operations, independent of HTTP.

    The list reads one page: a ListExecutions page joined with its records by BatchGetItem, or a page
    of the operator index for a notification status. Nothing reads the whole table, so a page costs
    the same at a hundred runs as at a million.
    """

    def __init__(self, store: RunStore, definition: dict[str, Any] | None = None) -> None:
        self.store = store
        self.redriver = Redriver(store)
        self._definition = definition
        self._graph: dict[str, Any] | None = None
        self._machine: dict[str, Any] | None = None
        self._descriptions: dict[str, tuple[str | None, float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    @property
    def machine(self) -> dict[str, Any]:
        """DescribeStateMachine, once: name, type and the definition that really runs."""
        if self._machine is None:
            self._machine = self.store.sfn.describe_state_machine(stateMachineArn=self.store.state_machine_arn)
        return self._machine

    @property
    def definition(self) -> dict[str, Any]:
        """The definition given, else the one deployed (its structure is all the graph needs)."""
        if self._definition is None:
            self._definition = json.loads(self.machine["definition"])
        return self._definition

    @property
    def graph(self) -> dict[str, Any]:
        """The layout, computed once: the definition does not change while the console runs."""
        if self._graph is None:
            self._graph = layout(self.definition)
        return self._graph

    def definition_view(self) -> dict[str, Any]:
        """GET /api/definition: the machine, its definition and the graph layout the page draws."""
        return {
            "stateMachineArn": self.store.state_machine_arn,
            "name": self.machine.get("name"),
            "type": self.machine.get("type", "STANDARD"),
            "tableName": self.store.table_name,
            "definition": self.definition,
            "graph": self.graph,
        }

    def executions(
        self,
        status: str | None = None,
        query: str | None = None,
        token: str | None = None,
        limit: int = PAGE_SIZE,
    ) -> dict[str, Any]:
        """One page of runs joined with their records, newest first, filtered by run or record status or id."""
        status = (status or "").strip().upper() or None
        if status and status not in _RUN_STATUSES and not status.startswith(RECORD_FILTER_PREFIX):
            raise ApiError(HTTPStatus.BAD_REQUEST, f"unknown status {status!r}")
        record_status = status.removeprefix(RECORD_FILTER_PREFIX) if status else None
        if record_status == status:
            record_status = None
        if record_status is not None and record_status not in _RECORD_STATUSES:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"unknown record status {record_status!r}")
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        needle = (query or "").strip()
        if needle:
            rows, next_token = self._search(needle, status, record_status), None
        elif record_status in INDEXED:
            rows, next_token = self._index_page(RecordStatus(record_status), token, limit)
        else:
            run_status = ExecutionStatus.SUCCEEDED if record_status == RecordStatus.SUCCESS else status
            rows, next_token = self._executions_page(run_status, record_status, token, limit)
        return {
            "executions": rows,
            "next": next_token,
            "pageSize": limit,
            "stateMachineArn": self.store.state_machine_arn,
            "generatedAt": utc_iso(),
        }

    def _executions_page(
        self, run_status: str | None, record_status: str | None, token: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        page, next_token = self.store.executions_page(run_status, limit=limit, token=_decode_token(token, "runs"))
        resolved = resolve_records(self.store, page)
        rows = [self._row(execution, *resolved[execution["executionArn"]]) for execution in page]
        if record_status:
            rows = [row for row in rows if row["recordStatus"] == record_status and row["recordOwned"]]
        return rows, _encode_token("runs", next_token) if next_token else None

    def _index_page(
        self, record_status: RecordStatus, token: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of the operator index, plus the runs of this status it cannot hold from one ListExecutions page.

        The token carries both cursors; either source stops when it is exhausted. The second source only
        adds what the index lacks (see notiflow.operate.queries.belongs_outside_index), so nothing repeats.
        """
        cursors = _decode_token(token, "index") or {"index": None, "runs": None, "started": False}
        rows: list[dict[str, Any]] = []
        next_cursors: dict[str, Any] = {"index": None, "runs": None, "started": True}
        if cursors["index"] is not None or not cursors["started"]:
            page = self.store.ops_page(record_status, limit=limit, start_key=cursors["index"])
            described = self._describe_records(page.records)
            for record in page.records:
                execution = described.get(record.executionArn or "")
                if execution is not None:
                    rows.append(self._row(execution, record.notificationId, record))
            next_cursors["index"] = page.next_key
        if cursors["runs"] is not None or not cursors["started"]:
            run_status = RUN_STATUSES_OF[record_status][0]
            executions, runs_token = self.store.executions_page(run_status, limit=limit, token=cursors["runs"])
            resolved = resolve_records(self.store, executions)
            for execution in executions:
                notification_id, found = resolved[execution["executionArn"]]
                if belongs_outside_index(record_status, execution, found):
                    rows.append(self._row(execution, notification_id, found))
            next_cursors["runs"] = runs_token
        rows.sort(key=lambda row: row["startDate"] or "", reverse=True)
        more = next_cursors["index"] is not None or next_cursors["runs"] is not None
        return rows, _encode_token("index", next_cursors) if more else None

    def _describe_records(self, records: tuple[NotificationRecord, ...]) -> dict[str, dict[str, Any]]:
        """DescribeExecution of each record's run, reusing an earlier answer while the record has not changed.

        A page of the index is polled every few seconds; describing every run each time would exceed
        DescribeExecution's refill rate on AWS. A run's writes change its record (lastUpdatedAt), so an
        unchanged record of a finished run means an unchanged run; a running one is asked again after
        RUNNING_DESCRIBE_SECONDS.
        """
        now = time.monotonic()
        wanted: dict[str, str | None] = {r.executionArn: r.lastUpdatedAt for r in records if r.executionArn}
        found: dict[str, dict[str, Any]] = {}
        missing: list[str] = []
        with self._lock:
            for arn, version in wanted.items():
                cached = self._descriptions.get(arn)
                if cached is not None and cached[0] == version:
                    fresh = ExecutionStatus(cached[2]["status"]).finished or now - cached[1] < RUNNING_DESCRIBE_SECONDS
                    if fresh:
                        found[arn] = cached[2]
                        continue
                missing.append(arn)
        described = describe_all(self.store, missing)
        with self._lock:
            for arn, execution in described.items():
                self._descriptions[arn] = (wanted[arn], now, execution)
            while len(self._descriptions) > DESCRIPTION_CACHE_SIZE:
                self._descriptions.pop(next(iter(self._descriptions)))
        return {**found, **described}

    def _search(self, needle: str, status: str | None, record_status: str | None) -> list[dict[str, Any]]:
        """The notification with exactly this id, and runs among the newest SEARCH_WINDOW whose id contains it."""
        found: dict[str, dict[str, Any]] = {}
        record = self.store.record_model(needle)
        if record is not None:
            for arn in (record.executionArn, record.fastPathExecutionArn):
                if arn and arn.startswith("arn:aws:states:") and ":execution:" in arn:
                    with contextlib.suppress(ClientError):
                        found[arn] = self.store.describe(arn)
        lowered = needle.lower()
        for execution in self.store.executions(limit=SEARCH_WINDOW):
            if lowered in execution["name"].lower():
                found.setdefault(execution["executionArn"], execution)
        executions = sorted(found.values(), key=lambda e: e["startDate"], reverse=True)
        resolved = resolve_records(self.store, executions)
        rows = [self._row(execution, *resolved[execution["executionArn"]]) for execution in executions]
        if status in _RUN_STATUSES:
            rows = [row for row in rows if row["runStatus"] == status]
        if record_status:
            rows = [row for row in rows if row["recordStatus"] == record_status and row["recordOwned"]]
        return rows

    @staticmethod
    def _row(
        execution: dict[str, Any], notification_id: str | None, record: NotificationRecord | None
    ) -> dict[str, Any]:
        arn = execution["executionArn"]
        owned = record is not None and arn in (record.executionArn, record.fastPathExecutionArn)
        result = record.deliveryResult if record and owned else None
        start, stop = execution.get("startDate"), execution.get("stopDate")
        return {
            "name": execution["name"],
            "executionArn": arn,
            "notificationId": notification_id,
            "runStatus": execution["status"],
            "recordStatus": record.status if record else None,
            "recordOwned": owned,
            "attempts": record.attempts if record and owned else None,
            "lastStatusCode": result.statusCode if result else None,
            "errorName": (record.errorName if record and owned else None) or execution.get("error"),
            "targetHost": record.targetHost if record else None,
            "startDate": start.isoformat() if start else None,
            "stopDate": stop.isoformat() if stop else None,
            "durationSeconds": _seconds_between(start, stop),
            # ListExecutions carries redriveCount on AWS; the record's count stands in where it does not.
            "redriveCount": execution.get("redriveCount", (record.redriveCount if record and owned else 0) or 0),
            "reconciled": bool(record and owned and record.reconciledAt),
            "fastPathExecutionArn": record.fastPathExecutionArn if record else None,
        }

    def _describe(self, execution_arn: str) -> dict[str, Any]:
        if not execution_arn.startswith("arn:"):
            raise ApiError(HTTPStatus.NOT_FOUND, "an execution ARN is expected")
        try:
            return self.store.describe(execution_arn)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("ExecutionDoesNotExist", "InvalidArn", "ResourceNotFound"):
                raise ApiError(HTTPStatus.NOT_FOUND, f"no execution {execution_arn}") from None
            raise

    def execution(self, execution_arn: str) -> dict[str, Any]:
        """One run: description, history, passes, per-pass graph colours, record and the redrive verdict."""
        described = self._describe(execution_arn)
        if described.get("stateMachineArn") not in (None, self.store.state_machine_arn):
            raise ApiError(HTTPStatus.NOT_FOUND, "that execution belongs to another state machine")
        events = self.store.history(execution_arn)
        timeline = summarize_history(events)
        passes = run_passes(events)
        names = list(self.definition.get("States", {}))
        current = passes[-1].number if passes else 1
        notification_id = notification_id_of_input(described.get("input"))
        record = self.store.record_model(notification_id) if notification_id else None
        candidate = self.redriver.candidate(
            notification_id or described["name"], execution_arn, record=record, execution=described
        )
        execution = {k: v for k, v in described.items() if k != "ResponseMetadata"}
        execution["durationSeconds"] = _seconds_between(described.get("startDate"), described.get("stopDate"))
        return {
            "execution": execution,
            "notificationId": notification_id,
            "events": history_rows(events),
            "timeline": [visit.as_json() for visit in timeline],
            "passes": [run_pass.as_json() for run_pass in passes],
            "currentPass": current,
            "colours": state_colours(timeline, names, current),
            "passColours": {str(p.number): state_colours(timeline, names, p.number) for p in passes},
            "earlierFailures": earlier_failures(timeline),
            "record": record_json(record) if record else None,
            "recordOwned": record is not None and execution_arn in (record.executionArn, record.fastPathExecutionArn),
            "redrive": {"allowed": candidate.refusal is None, "reason": candidate.refusal},
        }

    def redrive(self, execution_arn: str) -> dict[str, Any]:
        """Redrive when allowed (reopening a record the reconciler closed); the refusal reason otherwise."""
        described = self._describe(execution_arn)
        notification_id = notification_id_of_input(described.get("input")) or described["name"]
        record = self.store.record_model(notification_id)
        candidate = self.redriver.candidate(notification_id, execution_arn, record=record, execution=described)
        if candidate.refusal is not None:
            raise ApiError(HTTPStatus.CONFLICT, candidate.refusal)
        try:
            self.redriver.start(candidate)
        except RedriveRefusedError as exc:
            raise ApiError(HTTPStatus.CONFLICT, str(exc)) from None
        return {"executionArn": execution_arn, "redriveCount": candidate.redrive_count + 1, "redrivenAt": utc_iso()}


class _Server(LoopbackHTTPServer):
    def __init__(self, address: tuple[str, int], console: Console) -> None:
        self.console = console
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "notiflow-console"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _allowed_host(self) -> bool:
        """Only 127.0.0.1/localhost names: a page elsewhere cannot rebind a DNS name onto this port."""
        port = self.server.server_port
        return self.headers.get("Host", "") in (f"127.0.0.1:{port}", f"localhost:{port}")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload, default=json_default, separators=(",", ":")).encode()
        self._send(status, body, "application/json; charset=utf-8")

    def _dispatch(self, route: Any) -> None:
        try:
            if not self._allowed_host():
                raise ApiError(HTTPStatus.MISDIRECTED_REQUEST, "unexpected Host header")
            route()
        except ApiError as exc:
            self._json(exc.status, {"error": str(exc)})
        except ClientError as exc:
            error = exc.response.get("Error", {})
            self._json(HTTPStatus.BAD_GATEWAY, {"error": f"{error.get('Code')}: {error.get('Message')}"})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # the console must keep serving; the error goes to the page
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(exc).__name__}: {exc}"})

    def do_GET(self) -> None:
        self._dispatch(self._get)

    def do_HEAD(self) -> None:
        self._dispatch(self._get)

    def do_POST(self) -> None:
        self._dispatch(self._post)

    def _get(self) -> None:
        parts = urlsplit(self.path)
        console = self.server.console
        if parts.path in STATIC_FILES:
            name, content_type = STATIC_FILES[parts.path]
            self._send(HTTPStatus.OK, (STATIC_DIR / name).read_bytes(), content_type)
        elif parts.path == "/api/definition":
            self._json(HTTPStatus.OK, console.definition_view())
        elif parts.path == "/api/executions":
            query = {key: values[0] for key, values in parse_qs(parts.query).items() if values}
            try:
                limit = int(query.get("limit", PAGE_SIZE))
            except ValueError:
                raise ApiError(HTTPStatus.BAD_REQUEST, "limit must be a number") from None
            self._json(HTTPStatus.OK, console.executions(query.get("status"), query.get("q"), query.get("next"), limit))
        elif parts.path.startswith("/api/executions/"):
            arn = unquote(parts.path.removeprefix("/api/executions/"))
            self._json(HTTPStatus.OK, console.execution(arn))
        else:
            raise ApiError(HTTPStatus.NOT_FOUND, "not found")

    def _post(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 65536))
        # A custom header makes a cross-site request non-simple: the browser must ask first, and we never agree.
        if self.headers.get(CLIENT_HEADER) != "1":
            raise ApiError(HTTPStatus.FORBIDDEN, f"missing {CLIENT_HEADER} header")
        path = urlsplit(self.path).path
        if path.startswith("/api/executions/") and path.endswith("/redrive"):
            arn = unquote(path.removeprefix("/api/executions/").removesuffix("/redrive"))
            self._json(HTTPStatus.OK, self.server.console.redrive(arn))
        else:
            raise ApiError(HTTPStatus.NOT_FOUND, "not found")


class ConsoleServer:
    """The console on 127.0.0.1 in a background thread; a context manager, or :meth:`start` / :meth:`stop`."""

    def __init__(self, store: RunStore, definition: dict[str, Any] | None = None, *, port: int = 0) -> None:
        self.console = Console(store, definition)
        self._address = ("127.0.0.1", port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def for_stack(cls, stack: Any, *, port: int = 0) -> ConsoleServer:
        """A console over an EmbeddedStack (anything with client(), table_name, state_machine_arn, definition)."""
        store = RunStore(
            stack.client("dynamodb"), stack.client("stepfunctions"), stack.table_name, stack.state_machine_arn
        )
        definition = getattr(stack, "definition", None)
        return cls(store, json.loads(definition) if isinstance(definition, str) and definition else None, port=port)

    def __enter__(self) -> ConsoleServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> ConsoleServer:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is not None:
            return self
        self._server = _Server(self._address, self.console)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="notiflow-console", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    @property
    def port(self) -> int:
        """The bound port (useful with ``port=0``)."""
        if self._server is None:
            raise RuntimeError("console is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>/``."""
        return f"http://127.0.0.1:{self.port}/"

    def execution_url(self, execution_arn: str) -> str:
        """Deep link to one execution's page."""
        return f"{self.url}#/executions/{quote(execution_arn, safe='')}"


def serve_console(
    store: RunStore, port: int = 0, definition: dict[str, Any] | None = None, out: TextIO = sys.stdout
) -> None:
    """Serve until interrupted (for `notiflow console`)."""
    with ConsoleServer(store, definition, port=port) as console:
        print(f"Notiflow console: {console.url}  (Ctrl-C to stop)", file=out, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("console stopped", file=out)
