"""The `notiflow` command: the local demo, the embedded stack, and run operations.

Run operations work against AWS (default credential chain, the stack's outputs) or
against the embedded stack (``--endpoint-url``) through the same boto3 code. Every
command exits with a code from one table (notiflow/operate/exit_codes.py).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from infrastructure.spec import TargetPolicy
from lambdas.shared.constants import RecordStatus
from lambdas.shared.errors import StorageError
from lambdas.shared.models import notification_id_of_input
from lambdas.shared.record import ATTEMPT_LOG_HEAD
from notiflow.demo.receiver import add_arguments as add_receiver_arguments
from notiflow.local.fault_options import add_fault_arguments
from notiflow.operate.deployment import Deployment, DeploymentNotFoundError, resolve
from notiflow.operate.exit_codes import ExitCode, exit_code_table
from notiflow.operate.queries import RunFilter, RunStory, list_runs, parse_since, parse_time, show_run
from notiflow.operate.redrive import REPLAY_ADVICE
from notiflow.operate.render import cause_fields, delivery_fields, fmt_clock, fmt_duration, fmt_utc, labelled
from notiflow.operate.runs import Pass
from notiflow.shared.jsonutil import to_json
from notiflow.shared.lambda_logs import LOCAL_UP_LOG, destination
from notiflow.shared.table import render_table

DEFAULT_LOCAL_PORT = 4599
DEFAULT_CONSOLE_PORT = 4600


def _add_target_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("deployment")
    group.add_argument("--endpoint-url", help="AWS API endpoint of an embedded stack, e.g. http://127.0.0.1:4599")
    group.add_argument("--region", help="AWS region (default: AWS_REGION or us-east-1)")
    group.add_argument(
        "--stage", help="the deployment's stage: stack Notiflow-<stage>, names notiflow-<stage>-* (or NOTIFLOW_STAGE)"
    )
    group.add_argument("--stack-name", help="CloudFormation stack whose outputs name the resources (default Notiflow)")
    group.add_argument("--table-name", help="notifications table (overrides discovery)")
    group.add_argument("--state-machine-arn", help="state machine ARN (overrides discovery)")


def _stage(value: str) -> str:
    from infrastructure.config import ContextError, NotiflowConfig

    try:
        return str(NotiflowConfig.from_context({"stage": value}.get).stage)
    except ContextError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _deployment(args: argparse.Namespace) -> Deployment:
    return resolve(
        args.endpoint_url, args.region, args.stack_name, args.table_name, args.state_machine_arn, stage=args.stage
    )


def _filter(args: argparse.Namespace) -> RunFilter:
    return RunFilter(
        status=RecordStatus(args.status) if args.status else None,
        since=parse_since(args.since) if args.since else None,
        older_than=parse_since(args.older_than) if args.older_than else None,
        host=args.host,
        error=args.error,
    )


def cmd_runs_list(args: argparse.Namespace) -> int:
    limit = args.limit or None
    rows = list_runs(_deployment(args).store(), _filter(args), limit=limit)
    if args.json:
        print(to_json([row.as_json() for row in rows], indent=2))
        return ExitCode.OK
    table = [
        (
            r.notification_id,
            r.status or "no record",
            r.run_status,
            r.attempts,
            r.last_status_code,
            r.redrives or None,
            fmt_utc(r.started),
            fmt_utc(r.ended),
            fmt_duration(r.duration_seconds),
            r.error_name,
        )
        for r in rows
    ]
    headers = ("notification", "status", "run", "attempts", "code", "redrives", "started", "ended", "took", "error")
    print(render_table(headers, table))
    more = f"; the newest {limit} are shown (--limit N for more, 0 for all)" if limit and len(rows) >= limit else ""
    print(f"\n{len(rows)} run(s), newest first, times in UTC{more}")
    return ExitCode.OK


def _section(title: str, body: str) -> None:
    print(f"\n{title}")
    print(body if body else "  (none)")


def cmd_runs_show(args: argparse.Namespace) -> int:
    story = show_run(_deployment(args).store(), args.id)
    if args.json:
        print(to_json(story.as_json(), indent=2))
        return ExitCode.OK
    record = story.record or {}
    execution = story.execution or {}
    summary: list[tuple[str, str]] = [
        ("notification", record.get("notificationId") or notification_id_of_input(execution.get("input")) or "-"),
        ("status", f"{record.get('status', 'no record')} (notification), {execution.get('status', '-')} (run)"),
    ]
    if execution:
        started, stopped = execution.get("startDate"), execution.get("stopDate")
        took = fmt_duration(((stopped or datetime.now(UTC)) - started).total_seconds()) if started else None
        summary += [
            ("execution", execution["executionArn"]),
            ("started", fmt_utc(started, ms=True) or "-"),
            ("ended", (fmt_utc(stopped, ms=True) or "still running") + (f" (took {took})" if took else "")),
            ("redrives", str(execution.get("redriveCount", 0))),
        ]
        if execution.get("redriveDate"):
            summary.append(("last redrive", fmt_utc(execution["redriveDate"], ms=True) or "-"))
    if record.get("fastPathExecutionArn"):
        summary.append(("express run", record["fastPathExecutionArn"]))
    if record.get("targetHost"):
        summary.append(("target", f"{record.get('targetMethod', 'POST')} {record['targetHost']}"))
    summary.append(("attempts", str(record.get("attempts", 0))))
    if record.get("errorName") or record.get("failureReason"):
        summary.append(("failure", f"{record.get('errorName', '')}: {record.get('failureReason', '')}".strip(": ")))
    if record.get("reconciledAt"):
        summary.append(("closed by", f"the reconciler at {fmt_utc(record['reconciledAt'], ms=True)}"))
    if record.get("status") == RecordStatus.REJECTED:
        summary.append(("next step", REPLAY_ADVICE.removeprefix("rejected: ")))
    print(labelled(summary, indent=""))
    if record.get("deliveryResult"):
        _section("delivery result", labelled(delivery_fields(record["deliveryResult"])))
    if execution.get("error") or execution.get("cause"):
        _section("run error", labelled(cause_fields(execution.get("error"), execution.get("cause"))))
    _print_timeline(story)
    _print_attempts(record, story.passes)
    return ExitCode.OK


def _indented(text: str, prefix: str = "  ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def _pass_heading(run_pass: Pass) -> str:
    what = "run started" if run_pass.number == 1 else f"redrive {run_pass.redrive} started"
    heading = f"pass {run_pass.number}: {what} {fmt_utc(run_pass.started, ms=True)}"
    if run_pass.number > 1 and run_pass.resumed_in:
        heading += f", resumed in {run_pass.resumed_in}"
    if run_pass.ended:
        heading += f"; ended {run_pass.status}" + (f" with {run_pass.error}" if run_pass.error else "")
        heading += f" at {fmt_clock(run_pass.ended)}"
    else:
        heading += "; still running"
    return heading


def _print_timeline(story: RunStory) -> None:
    sections = []
    for run_pass in story.passes:
        rows = []
        for visit in (v for v in story.timeline if v.pass_number == run_pass.number):
            error = visit.errors[-1] if visit.errors else {}
            fields = cause_fields(None, error.get("cause")) if error else []
            reason = next((value for label, value in fields if label in ("details", "cause")), None)
            rows.append(
                (
                    fmt_clock(visit.entered),
                    visit.name,
                    visit.outcome,
                    visit.retries or None,
                    error.get("error") if error else None,
                    reason,
                )
            )
        table = render_table(("entered", "state", "outcome", "retries", "error", "reason"), rows, max_width=60)
        sections.append(_pass_heading(run_pass) + "\n" + _indented(table))
    _section("timeline (times in UTC)", "\n".join(sections))


def _print_attempts(record: dict[str, Any], passes: list[Pass]) -> None:
    log = record.get("attemptLog") or []
    dropped = record.get("attemptLogDropped") or 0
    title = f"attempt log ({record.get('attempts', len(log))} attempts"
    title += f"; {dropped} between the first {ATTEMPT_LOG_HEAD} and the latest were not kept)" if dropped else ")"
    groups: dict[str, list[tuple[Any, ...]]] = {}
    for entry in log:
        moment = parse_time(entry.get("timestamp"))
        run_pass = next((p for p in reversed(passes) if moment and p.started <= moment), None)
        if entry.get("executionId") and entry.get("executionId") != record.get("executionArn"):
            group = f"an earlier run ({entry['executionId'].rsplit(':', 1)[-1]})"
        elif run_pass is None:
            group = "this run"
        else:
            group = f"pass {run_pass.number}" + (f" (redrive {run_pass.redrive})" if run_pass.redrive else "")
        rows = groups.setdefault(group, [])
        rows.append(
            (
                f"#{entry.get('attempt')}",
                fmt_utc(entry.get("timestamp"), ms=True),
                entry.get("category"),
                entry.get("statusCode"),
                f"{entry.get('responseTime')} ms" if entry.get("responseTime") is not None else None,
                entry.get("errorDetails"),
            )
        )
        if dropped and entry.get("attempt") == ATTEMPT_LOG_HEAD:
            rows.append(("...", f"{dropped} not kept", None, None, None, None))
    headers = ("attempt", "at (UTC)", "category", "code", "took", "details")
    body = "\n".join(f"{group}\n" + _indented(render_table(headers, rows)) for group, rows in groups.items())
    _section(title, body)


def cmd_redrive(args: argparse.Namespace) -> int:
    from notiflow.operate.redrive import run_redrive_command

    return run_redrive_command(_deployment(args), args)


def cmd_cost(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from notiflow.cost.model import price
    from notiflow.cost.prices import load_prices
    from notiflow.cost.read import read_usage
    from notiflow.cost.report import render
    from notiflow.cost.usage import Usage

    prices = load_prices(Path(args.prices) if args.prices else None)
    if args.usage:
        usages = [Usage.from_json(json.loads(Path(path).read_text(encoding="utf-8"))) for path in args.usage]
    else:
        deployment = _deployment(args)
        if not deployment.state_machine_arn:
            raise DeploymentNotFoundError("state machine ARN is unknown")
        since = parse_since(args.since) if args.since else None
        usages = [read_usage(deployment.client("stepfunctions"), deployment.state_machine_arn, prices, since=since)]
    empty = [usage.mode for usage in usages if not usage.notifications]
    if empty:
        raise LookupError(f"no finished runs to price ({', '.join(empty)})")
    print(render({usage.mode: price(usage, prices) for usage in usages}, prices))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from notiflow.demo.scenarios import run_demo

    return run_demo(
        time_scale=args.time_scale,
        keep_running=args.keep_running or args.open,
        port=args.port,
        open_browser=args.open,
    )


def cmd_local_up(args: argparse.Namespace) -> int:
    from notiflow.console.server import ConsoleServer
    from notiflow.local.server import serve
    from notiflow.local.stack import EmbeddedStack, StackSettings

    out = sys.stdout  # taken before serve() sends the Lambdas' stdout to their log file
    consoles: list[ConsoleServer] = []

    def start_console(stack: EmbeddedStack) -> None:
        console = ConsoleServer.for_stack(stack, port=args.console_port).start()
        consoles.append(console)
        print(f"\nConsole: {console.url}", file=out, flush=True)

    try:
        serve(
            port=args.port,
            time_scale=args.time_scale,
            out=out,
            on_ready=start_console,
            settings=StackSettings(
                target_policy=args.target_policy,
                stage=args.stage,
                faults=args.faults,
                fault_seed=args.fault_seed,
                fault_report=str(args.fault_report) if args.faults else None,
            ),
            lambda_logs=args.lambda_logs,
        )
    finally:
        for console in consoles:
            console.stop()
    return 0


def cmd_receiver(args: argparse.Namespace) -> int:
    from notiflow.demo.receiver import run

    return run(args)


def cmd_console(args: argparse.Namespace) -> int:
    import threading
    import webbrowser

    from notiflow.console.server import ConsoleServer

    with ConsoleServer(_deployment(args).store(), port=args.port) as console:
        print(f"Notiflow console: {console.url}  (Ctrl-C to stop)", flush=True)
        if args.open:
            webbrowser.open(console.url)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="notiflow",
        description=__doc__.splitlines()[0],
        epilog=exit_code_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def command(parent: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        """A subcommand whose --help ends with the exit-code table, as every command's does."""
        sub: argparse.ArgumentParser = parent.add_parser(
            name, epilog=exit_code_table(), formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs
        )
        return sub

    demo = command(commands, "demo", help="run the whole pipeline locally on a realistic batch and print a table")
    demo.add_argument("--time-scale", type=float, default=0.0001, help="multiply every ASL wait (default 0.0001)")
    demo.add_argument("--keep-running", action="store_true", help="keep the stack up afterwards to inspect runs")
    demo.add_argument("--open", action="store_true", help="keep running and open the console in the browser")
    demo.add_argument(
        "--port", type=int, default=0, help="embedded AWS endpoint port (default: 4599 when kept running)"
    )
    demo.set_defaults(func=cmd_demo)

    local = command(commands, "local", help="the embedded stack").add_subparsers(dest="local_command", required=True)
    up = command(local, "up", help="keep the embedded stack running on 127.0.0.1")
    up.add_argument("--port", type=int, default=DEFAULT_LOCAL_PORT)
    up.add_argument("--time-scale", type=float, default=1.0, help="multiply every ASL wait (e.g. 0.01)")
    up.add_argument("--console-port", type=int, default=DEFAULT_CONSOLE_PORT, help="port of the web console")
    up.add_argument("--stage", type=_stage, help="name every resource notiflow-<stage>-* as that deployed stage")
    up.add_argument(
        "--target-policy",
        type=TargetPolicy,
        choices=list(TargetPolicy),
        default=TargetPolicy.LOCAL,
        help="local (default): http and 127.0.0.1 receivers allowed; production: exactly what AWS allows",
    )
    up.add_argument(
        "--lambda-logs",
        type=destination,
        default=LOCAL_UP_LOG,
        metavar="PATH|stdout",
        help=f"where the Lambdas' logs and metrics go (default {LOCAL_UP_LOG})",
    )
    add_fault_arguments(up)
    up.set_defaults(func=cmd_local_up)

    receiver = command(commands, "receiver", help="a webhook receiver on 127.0.0.1 that checks signatures")
    add_receiver_arguments(receiver)
    receiver.set_defaults(func=cmd_receiver)

    console = command(commands, "console", help="the web console for runs (local stack or AWS)")
    _add_target_options(console)
    console.add_argument("--port", type=int, default=DEFAULT_CONSOLE_PORT)
    console.add_argument("--open", action="store_true", help="open it in the default browser")
    console.set_defaults(func=cmd_console)

    runs = command(commands, "runs", help="find and inspect notifications").add_subparsers(
        dest="runs_command", required=True
    )
    listing = command(
        runs,
        "list",
        help="runs newest first, with status, attempts, last status code, redrives and times",
        description=(
            "FAILED, REJECTED and PROCESSING come from the table's operator index (a query that reads what it "
            "returns); FAILED also lists runs that ended without a record of their own. Without --status, or "
            "with SUCCESS, the newest runs are read from Step Functions a page at a time."
        ),
    )
    _add_target_options(listing)
    listing.add_argument("--status", choices=list(RecordStatus), help="the notification's status")
    listing.add_argument("--since", help="reached that status in this window: 6h, 30m, 2d or an ISO time")
    listing.add_argument("--older-than", help="reached it before then, e.g. --status PROCESSING --older-than 1h")
    listing.add_argument("--host", help="only this target host")
    listing.add_argument("--error", help="only this error name, e.g. DeliveryPermanentError")
    listing.add_argument("--limit", type=int, default=100, help="at most this many, newest first (0: all)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_runs_list)
    show = command(runs, "show", help="record, delivery result, run error, timeline by pass and attempt log")
    _add_target_options(show)
    show.add_argument("id", help="notification id or execution ARN")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_runs_show)

    redrive = command(
        commands,
        "redrive",
        help="redrive failed runs (one, or in bulk with a canary per host) and report what each came to",
        description=(
            "One run: redrives it, waits for it and says whether it delivered. In bulk (--status FAILED): the "
            "oldest run of each target host goes first as that host's canary; a host whose canary fails again "
            "keeps its other runs untouched; the rest follow at --rate per second and each is followed to its "
            "end. Rejected runs are never redriven: fix the message and send it again with the SQS message "
            "attribute notiflow-replay=true."
        ),
    )
    _add_target_options(redrive)
    redrive.add_argument("id", nargs="?", help="notification id or execution ARN")
    redrive.add_argument("--status", default=None, choices=[RecordStatus.FAILED])
    redrive.add_argument("--since", help="bulk: only runs that failed in this window")
    redrive.add_argument("--host", help="bulk: only this target host")
    redrive.add_argument("--error", help="bulk: only this error name")
    redrive.add_argument("--rate", type=_positive, default=2.0, help="bulk: redrives per second (default 2)")
    redrive.add_argument("--dry-run", action="store_true", help="list what would be redriven and why not")
    redrive.add_argument(
        "--wait-seconds",
        type=float,
        default=120.0,
        help="how long to wait for the redriven runs (each wave: canaries, then the rest); default 120",
    )
    redrive.set_defaults(func=cmd_redrive)

    cost = commands.add_parser(
        "cost", help="cost per million notifications by component, from execution histories or make cost's usage"
    )
    _add_target_options(cost)
    cost.add_argument("--since", help="only runs started in this window: 6h, 30m, 2d or an ISO time")
    cost.add_argument(
        "--usage", nargs="+", metavar="FILE", help="price usage files make cost wrote (.notiflow/cost/usage-*.json)"
    )
    cost.add_argument("--prices", help="another price file (default infrastructure/prices.json)")
    cost.set_defaults(func=cmd_cost)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `notiflow` console script; the exit code follows ExitCode's table."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (DeploymentNotFoundError, LookupError, ValueError) as exc:
        print(f"notiflow: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except (BotoCoreError, ClientError, StorageError) as exc:
        print(f"notiflow: AWS said: {exc}", file=sys.stderr)
        return ExitCode.AWS_ERROR
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
