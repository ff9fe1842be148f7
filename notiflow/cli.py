"""The `notiflow` command: the local demo, the embedded stack, and run operations.

Run operations work against AWS (default credential chain, the stack's outputs) or
against the embedded stack (``--endpoint-url``) through the same boto3 code.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

from botocore.exceptions import BotoCoreError, ClientError

from infrastructure.spec import TargetPolicy
from lambdas.shared.constants import RecordStatus
from notiflow.demo.receiver import add_arguments as add_receiver_arguments
from notiflow.local.fault_options import add_fault_arguments
from notiflow.operate.deployment import Deployment, DeploymentNotFoundError, resolve
from notiflow.operate.queries import RunFilter, list_runs, parse_since, show_run
from notiflow.shared.jsonutil import to_json
from notiflow.shared.lambda_logs import LOCAL_UP_LOG, destination
from notiflow.shared.table import render_table

DEFAULT_LOCAL_PORT = 4599
DEFAULT_CONSOLE_PORT = 4600


def _add_target_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("deployment")
    group.add_argument("--endpoint-url", help="AWS API endpoint of an embedded stack, e.g. http://127.0.0.1:4599")
    group.add_argument("--region", help="AWS region (default: AWS_REGION or us-east-1)")
    group.add_argument("--stack-name", help="CloudFormation stack whose outputs name the resources (default Notiflow)")
    group.add_argument("--table-name", help="notifications table (overrides discovery)")
    group.add_argument("--state-machine-arn", help="state machine ARN (overrides discovery)")


def _deployment(args: argparse.Namespace) -> Deployment:
    return resolve(args.endpoint_url, args.region, args.stack_name, args.table_name, args.state_machine_arn)


def _filter(args: argparse.Namespace) -> RunFilter:
    return RunFilter(
        status=args.status,
        since=parse_since(args.since) if args.since else None,
        host=args.host,
        error=args.error,
    )


def cmd_runs_list(args: argparse.Namespace) -> int:
    rows = list_runs(_deployment(args).store(), _filter(args), limit=args.limit)
    if args.json:
        print(to_json([row.__dict__ for row in rows], indent=2))
        return 0
    table = [
        (
            r.notification_id,
            r.status,
            r.attempts,
            r.last_status_code,
            r.started,
            f"{r.duration_seconds:.1f}s" if r.duration_seconds is not None else None,
            r.error_name,
        )
        for r in rows
    ]
    headers = ("notification", "status", "attempts", "last code", "started", "duration", "error")
    print(render_table(headers, table))
    print(f"\n{len(rows)} notification(s)")
    return 0


def cmd_runs_show(args: argparse.Namespace) -> int:
    story = show_run(_deployment(args).store(), args.id)
    if args.json:
        print(to_json(story.as_json(), indent=2))
        return 0
    record = story.record or {}
    print(f"notification  {record.get('notificationId', '-')}")
    print(f"status        {record.get('status', '-')}   attempts {record.get('attempts', 0)}")
    if story.execution:
        execution = story.execution
        print(f"execution     {execution['executionArn']}")
        print(
            f"run status    {execution['status']}   redrives {execution.get('redriveCount', 0)}"
            f"   started {execution['startDate']:%Y-%m-%d %H:%M:%S}"
        )
    if record.get("failureReason"):
        print(f"reason        {record.get('errorName', '')}: {record['failureReason']}")
    result = record.get("deliveryResult")
    if result:
        print("delivery      " + to_json(result, sort_keys=True))
    print()
    rows = []
    for visit in story.timeline:
        error = visit.errors[-1] if visit.errors else {}
        cause = (error.get("cause") or "")[:60] if error else None
        rows.append(
            (
                visit.entered.strftime("%H:%M:%S.%f")[:-3],
                visit.name,
                visit.outcome,
                visit.retries or None,
                error.get("error") if error else None,
                cause,
            )
        )
    print(render_table(("entered", "state", "outcome", "retries", "error", "cause"), rows, max_width=64))
    for entry in record.get("attemptLog", []):
        print(
            f"  attempt {entry.get('attempt')}: {entry.get('category')} {entry.get('statusCode') or ''} "
            f"{entry.get('responseTime')} ms {entry.get('errorDetails') or ''}".rstrip()
        )
    return 0


def cmd_redrive(args: argparse.Namespace) -> int:
    from notiflow.operate.redrive import run_redrive_command

    return run_redrive_command(_deployment(args), args)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="notiflow", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the whole pipeline locally on a realistic batch and print a table")
    demo.add_argument("--time-scale", type=float, default=0.0001, help="multiply every ASL wait (default 0.0001)")
    demo.add_argument("--keep-running", action="store_true", help="keep the stack up afterwards to inspect runs")
    demo.add_argument("--open", action="store_true", help="keep running and open the console in the browser")
    demo.add_argument(
        "--port", type=int, default=0, help="embedded AWS endpoint port (default: 4599 when kept running)"
    )
    demo.set_defaults(func=cmd_demo)

    local = commands.add_parser("local", help="the embedded stack").add_subparsers(dest="local_command", required=True)
    up = local.add_parser("up", help="keep the embedded stack running on 127.0.0.1")
    up.add_argument("--port", type=int, default=DEFAULT_LOCAL_PORT)
    up.add_argument("--time-scale", type=float, default=1.0, help="multiply every ASL wait (e.g. 0.01)")
    up.add_argument("--console-port", type=int, default=DEFAULT_CONSOLE_PORT, help="port of the web console")
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

    receiver = commands.add_parser("receiver", help="a webhook receiver on 127.0.0.1 that checks signatures")
    add_receiver_arguments(receiver)
    receiver.set_defaults(func=cmd_receiver)

    console = commands.add_parser("console", help="the web console for runs (local stack or AWS)")
    _add_target_options(console)
    console.add_argument("--port", type=int, default=DEFAULT_CONSOLE_PORT)
    console.add_argument("--open", action="store_true", help="open it in the default browser")
    console.set_defaults(func=cmd_console)

    runs = commands.add_parser("runs", help="find and inspect notifications").add_subparsers(
        dest="runs_command", required=True
    )
    listing = runs.add_parser("list", help="notifications with status, attempts and last status code")
    _add_target_options(listing)
    listing.add_argument("--status", choices=list(RecordStatus))
    listing.add_argument("--since", help="only runs created in this window: 6h, 30m, 2d or an ISO time")
    listing.add_argument("--host", help="only this target host")
    listing.add_argument("--error", help="only this error name, e.g. DeliveryPermanentError")
    listing.add_argument("--limit", type=int)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_runs_list)
    show = runs.add_parser("show", help="record, delivery result and state-by-state timeline")
    _add_target_options(show)
    show.add_argument("id", help="notification id or execution ARN")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_runs_show)

    redrive = commands.add_parser("redrive", help="redrive failed runs (one, or in bulk with a canary)")
    _add_target_options(redrive)
    redrive.add_argument("id", nargs="?", help="notification id or execution ARN")
    redrive.add_argument("--status", default=None, choices=[RecordStatus.FAILED])
    redrive.add_argument("--since", help="bulk: only runs created in this window")
    redrive.add_argument("--host", help="bulk: only this target host")
    redrive.add_argument("--error", help="bulk: only this error name")
    redrive.add_argument("--rate", type=float, default=2.0, help="bulk: redrives per second after the canary")
    redrive.add_argument("--dry-run", action="store_true", help="list what would be redriven and why not")
    redrive.add_argument("--wait-seconds", type=float, default=120.0, help="how long to wait for the canary")
    redrive.set_defaults(func=cmd_redrive)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `notiflow` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (DeploymentNotFoundError, LookupError, ValueError) as exc:
        print(f"notiflow: {exc}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as exc:
        print(f"notiflow: AWS said: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
