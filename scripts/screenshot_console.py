"""Screenshot of the local console over real runs: ``python scripts/screenshot_console.py [--output docs/console.png]``.

Starts the embedded stack and a scripted webhook receiver on 127.0.0.1, sends a few notifications
through the intake queue (delivered, delivered after retries, failed for good, rejected), waits for
their runs to end, then opens the console in headless Chromium and writes a PNG of the failed run's
page (or of the executions list with ``--page list``). Needs Debian's ``chromium`` at /usr/bin/chromium
(or ``--chromium PATH``) and the ``playwright`` Python package; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from lambdas.ingest.starter import execution_name  # noqa: E402
from notiflow.console.server import ConsoleServer  # noqa: E402
from notiflow.demo.receiver import Step, WebhookReceiver  # noqa: E402
from notiflow.local.stack import EmbeddedStack, StackSettings  # noqa: E402
from notiflow.operate.runs import RunStore  # noqa: E402
from notiflow.shared.chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

NOTIFICATIONS = [
    # (notification id, receiver path, what the endpoint answers, event type)
    ("order-1042-shipped", "/orders", [Step(200)], "order.shipped"),
    ("user-9-welcome", "/users", [Step(503), Step(503), Step(200)], "user.created"),
    ("invoice-77-paid", "/billing", [Step(404, body='{"error": "no such route"}')], "invoice.paid"),
    ("cart-311-abandoned", "/carts", [Step(200)], "cart.abandoned"),
]
REJECTED_ID = "report-5-ready"
REJECTED: dict[str, Any] = {
    "notificationId": REJECTED_ID,
    "target": {"url": "ftp://files.example.com/r"},
    "payload": {},
}
FOCUS = "invoice-77-paid"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "docs" / "console.png")
    parser.add_argument("--page", choices=["execution", "list"], default="execution")
    parser.add_argument("--width", type=int, default=1440)
    parser.add_argument("--height", type=int, default=1500)
    parser.add_argument("--full-page", action="store_true", help="the whole page, not just the first screen")
    parser.add_argument("--chromium", type=Path, default=CHROMIUM)
    return parser.parse_args(argv)


def send_notifications(stack: EmbeddedStack, receiver: WebhookReceiver) -> dict[str, str]:
    """Send every notification and wait for its run to end; returns execution ARNs by notification id."""
    arns: dict[str, str] = {}
    for notification_id, path, steps, event_type in NOTIFICATIONS:
        receiver.script(path, steps)
        stack.send_notification(
            {
                "notificationId": notification_id,
                "target": {"url": receiver.url(path)},
                "payload": {"id": notification_id, "event": event_type},
                "eventType": event_type,
                "correlationId": "req-" + hashlib.sha256(notification_id.encode()).hexdigest()[:8],
            }
        )
        arns[notification_id] = stack.execution_arn(execution_name(notification_id))
    stack.send_notification(REJECTED)
    arns[REJECTED_ID] = stack.execution_arn(execution_name(REJECTED_ID))
    store = RunStore(stack.client("dynamodb"), stack.client("stepfunctions"), stack.table_name, stack.state_machine_arn)
    for arn in arns.values():
        store.wait_for_finish(arn, timeout=60)
    return arns


def screenshot(args: argparse.Namespace) -> Path:
    from playwright.sync_api import sync_playwright

    if not args.chromium.exists():
        raise SystemExit(f"{args.chromium} not found: install Debian's chromium (apt-get install chromium)")
    settings = StackSettings(time_scale=0.0001, max_wait_seconds=0.05, start_poller=True)
    with EmbeddedStack(settings) as stack, WebhookReceiver(secret=stack.signing_secret) as receiver:
        arns = send_notifications(stack, receiver)
        with ConsoleServer.for_stack(stack) as console, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(args.chromium), args=list(CHROMIUM_ARGS))
            try:
                page = browser.new_page(viewport={"width": args.width, "height": args.height})
                if args.page == "list":
                    page.goto(console.url)
                    page.wait_for_selector("#execution-rows tr[data-arn]")
                else:
                    page.goto(console.execution_url(arns[FOCUS]))
                    page.wait_for_selector('#graph g.node[data-state="FailureGate"]')
                page.wait_for_selector('body[data-live="false"]')
                args.output.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.output), full_page=args.full_page)
            finally:
                browser.close()
    return args.output


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    path = screenshot(args)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
