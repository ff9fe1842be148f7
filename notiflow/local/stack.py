"""EmbeddedStack: moto's server on 127.0.0.1, provisioned like the CDK app, running the real handlers.

One stack serves Step Functions (the real ASL, interpreted), Lambda (the real handlers, called
in-process), DynamoDB, SQS with its DLQ, Secrets Manager and IAM on one HTTP endpoint, so tests,
the demo and ``aws --endpoint-url`` drive the same thing. moto's backends are process-global, so
one stack runs per process at a time.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import os
import secrets
import socket
import threading
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import boto3
from botocore.config import Config

from lambdas.shared.constants import (
    DEFAULT_DLQ_NAME,
    DEFAULT_QUEUE_NAME,
    DEFAULT_STATE_MACHINE_NAME,
    DEFAULT_TABLE_NAME,
    METRICS_NAMESPACE,
    SERVICE_NAME,
    STEP_DEDUPLICATE,
    STEP_DELIVER,
    STEP_FAILURE_GATE,
    STEP_INGEST,
    STEP_VALIDATE,
    TABLE_PARTITION_KEY,
    TABLE_TTL_ATTRIBUTE,
    WORKFLOW_STEPS,
    EnvVar,
    handler_path,
)
from notiflow.local import engine
from notiflow.local.sqs_poller import SqsPoller
from notiflow.operate.runs import execution_arn
from workflows.definition import DeliveryRetryPolicy, render_definition

LOG = logging.getLogger(__name__)

HOST: Final = "127.0.0.1"
REGION: Final = "us-east-1"
ACCOUNT_ID: Final = engine.DEFAULT_ACCOUNT_ID
SIGNING_SECRET_NAME: Final = "notiflow-signing-secret"  # noqa: S105 - a name, not a value
LAMBDA_ROLE_NAME: Final = "notiflow-lambda"
STATE_MACHINE_ROLE_NAME: Final = "notiflow-state-machine"
MAX_RECEIVE_COUNT: Final = 3
LAMBDA_RUNTIME: Final = "python3.12"
FUNCTION_TIMEOUTS: Final = {
    STEP_INGEST: 60,
    STEP_VALIDATE: 10,
    STEP_DEDUPLICATE: 10,
    STEP_DELIVER: 60,
    STEP_FAILURE_GATE: 10,
}
_REPO_ROOT: Final = Path(__file__).resolve().parents[2]
_ASSUME_ROLE: Final = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)

_process_lock = threading.Lock()
_running: EmbeddedStack | None = None
_last_port: int | None = None
_process_secret: str | None = None


def function_name(step: str) -> str:
    """Local function name of a Lambda step, e.g. ``notiflow-failure-gate``."""
    return f"{SERVICE_NAME}-{step.replace('_', '-')}"


def generate_signing_secret() -> str:
    """A fresh Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def lambda_environment(
    *,
    table_name: str,
    state_machine_arn: str,
    signing_secret_id: str,
    connect_timeout_seconds: float = 2.0,
    read_timeout_seconds: float = 5.0,
    allowed_schemes: tuple[str, ...] = ("http", "https"),
    allow_private_targets: bool = True,
    allowed_target_hosts: tuple[str, ...] = (),
    record_ttl_days: int | None = None,
    log_level: str = "WARNING",
) -> dict[str, str]:
    """Environment Variables of every Notiflow function on the local stack (all five share them).

    Locally targets are plain-HTTP receivers on 127.0.0.1, hence http and private targets allowed.
    """
    environment = {
        EnvVar.TABLE_NAME: table_name,
        EnvVar.STATE_MACHINE_ARN: state_machine_arn,
        EnvVar.SIGNING_SECRET_ID: signing_secret_id,
        EnvVar.CONNECT_TIMEOUT_SECONDS: f"{connect_timeout_seconds:g}",
        EnvVar.READ_TIMEOUT_SECONDS: f"{read_timeout_seconds:g}",
        EnvVar.ALLOWED_SCHEMES: ",".join(allowed_schemes),
        EnvVar.ALLOW_PRIVATE_TARGETS: "true" if allow_private_targets else "false",
        EnvVar.POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
        EnvVar.POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
        EnvVar.POWERTOOLS_LOG_LEVEL: log_level,
    }
    if allowed_target_hosts:
        environment[EnvVar.ALLOWED_TARGET_HOSTS] = ",".join(allowed_target_hosts)
    if record_ttl_days is not None:
        environment[EnvVar.RECORD_TTL_DAYS] = str(record_ttl_days)
    return environment


@dataclass(frozen=True)
class StackSettings:
    """Everything that can differ between two local stacks; defaults suit interactive use."""

    port: int | None = None
    time_scale: float = 1.0
    max_wait_seconds: float | None = None
    connect_timeout_seconds: float = 2.0
    read_timeout_seconds: float = 5.0
    retry_policy: DeliveryRetryPolicy | None = None
    queue_visibility_timeout_seconds: int = 30
    max_receive_count: int = MAX_RECEIVE_COUNT
    start_poller: bool = True
    poller_batch_size: int = 10
    poller_wait_seconds: int = 1
    engine_workers: int = 4
    """Executions running at once; a run waiting in a Retry back-off or a Wait state holds none."""
    max_runs_in_flight: int = 16
    """The SQS poller takes no more messages while this many runs wait for or hold a worker."""
    execution_retention: int | None = 1000
    """Finished runs kept; older ones are evicted (ExecutionDoesNotExist), their records stay. None: all."""
    signing_secret: str | None = None
    log_level: str = "WARNING"
    quiet: bool = True
    extra_environment: Mapping[str, str] = field(default_factory=dict)


def _code_zip() -> bytes:
    """Deployment package of the functions: the lambdas/ sources (the handlers run in-process)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted((_REPO_ROOT / "lambdas").rglob("*.py")):
            archive.write(path, path.relative_to(_REPO_ROOT).as_posix())
    return buffer.getvalue()


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


class EmbeddedStack:
    """The Notiflow resources on a moto server at ``http://127.0.0.1:<port>``.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. While it runs, the process
    environment points boto3 at the stack (``AWS_ENDPOINT_URL``, dummy credentials, us-east-1);
    :meth:`stop` restores it.
    """

    def __init__(self, settings: StackSettings | None = None, **overrides: Any) -> None:
        base = settings or StackSettings()
        self.settings = StackSettings(**{**base.__dict__, **overrides}) if overrides else base
        self.region = REGION
        self.account_id = ACCOUNT_ID
        self.table_name = DEFAULT_TABLE_NAME
        self.state_machine_name = DEFAULT_STATE_MACHINE_NAME
        self.state_machine_arn = f"arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:{DEFAULT_STATE_MACHINE_NAME}"
        self.signing_secret_name = SIGNING_SECRET_NAME
        self.function_names = {step: function_name(step) for step in (STEP_INGEST, *WORKFLOW_STEPS)}
        self.function_arns: dict[str, str] = {}
        self.queue_url = ""
        self.queue_arn = ""
        self.dlq_url = ""
        self.dlq_arn = ""
        self.signing_secret = ""
        self.signing_secret_arn = ""
        self.definition = ""
        self.poller: SqsPoller | None = None
        self._server: engine.MotoServer | None = None
        self._port: int | None = None
        self._saved_environ: dict[str, str | None] = {}
        self._saved_execution_mode: bool | None = None
        self._saved_loggers: dict[str, int] = {}
        self._session = boto3.session.Session()
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is up."""
        return self._server is not None

    @property
    def port(self) -> int:
        """The bound port."""
        if self._port is None:
            raise RuntimeError("the stack is not running")
        return self._port

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>``: the one endpoint of every service."""
        return f"http://{HOST}:{self.port}"

    def start(self) -> EmbeddedStack:
        """Start the server, point this process at it, provision every resource, start the poller."""
        global _running
        with _process_lock:
            if _running is not None:
                raise RuntimeError("an EmbeddedStack is already running in this process (moto state is global)")
            _running = self
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        global _last_port, _process_secret
        engine.install()
        self._quiet_loggers()
        port = self._choose_port()
        try:
            self._server = engine.start_server(HOST, port)
        except OSError:
            if self.settings.port or not port:
                raise
            self._server = engine.start_server(HOST, 0)
        self._port = self._server.port
        _last_port = self._port
        self._point_environment_here()
        engine.reset()
        self._saved_execution_mode = engine.set_execution_mode(True)
        engine.configure(
            time_scale=self.settings.time_scale,
            max_wait_seconds=self.settings.max_wait_seconds,
            workers=self.settings.engine_workers,
            retention_limit=self.settings.execution_retention,
        )
        engine.cold_start()
        if self.settings.signing_secret is None and _process_secret is None:
            _process_secret = generate_signing_secret()
        self.signing_secret = self.settings.signing_secret or _process_secret or ""
        for name in self.lambda_environment():
            self._saved_environ.setdefault(name, os.environ.get(name))
        self._provision()
        if self.settings.start_poller:
            self.poller = self.new_poller()
            self.poller.start()

    def _choose_port(self) -> int:
        """The requested port; else the one this process used last (handler code may hold clients
        bound to it); else any free port."""
        if self.settings.port:
            return self.settings.port
        if _last_port is not None and _port_is_free(_last_port):
            return _last_port
        return 0

    def stop(self) -> None:
        """Stop the poller and running executions, shut the server, restore the environment."""
        global _running
        if self.poller is not None:
            self.poller.stop()
            self.poller = None
        if self._server is not None:
            with contextlib.suppress(Exception):
                self._stop_running_executions()
            engine.stop_server(self._server)
            self._server = None
        engine.shutdown()
        with self._clients_lock:
            self._clients.clear()
        if self._saved_execution_mode is not None:
            engine.set_execution_mode(self._saved_execution_mode)
            self._saved_execution_mode = None
        engine.configure()
        engine.cold_start()
        self._restore_environment()
        self._restore_loggers()
        with _process_lock:
            if _running is self:
                _running = None

    # -- environment -------------------------------------------------------------------------

    def _set_env(self, name: str, value: str | None) -> None:
        if name not in self._saved_environ:
            self._saved_environ[name] = os.environ.get(name)
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value

    def _point_environment_here(self) -> None:
        self._set_env("MOTO_PORT", str(self.port))
        self._set_env("AWS_ENDPOINT_URL", self.endpoint_url)
        self._set_env("AWS_ACCESS_KEY_ID", "local")
        self._set_env("AWS_SECRET_ACCESS_KEY", "local")
        self._set_env("AWS_SESSION_TOKEN", None)
        self._set_env("AWS_PROFILE", None)
        self._set_env("AWS_DEFAULT_REGION", REGION)
        self._set_env("AWS_REGION", REGION)
        if "POWERTOOLS_TRACE_DISABLED" not in os.environ:
            # No X-Ray daemon locally. Metrics stay on: Powertools never clears disabled metrics.
            self._set_env("POWERTOOLS_TRACE_DISABLED", "true")

    def _restore_environment(self) -> None:
        for name, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_environ.clear()

    def _quiet_loggers(self) -> None:
        if not self.settings.quiet:
            return
        for name in ("werkzeug", "moto.stepfunctions.parser"):
            logger = logging.getLogger(name)
            self._saved_loggers[name] = logger.level
            logger.setLevel(logging.CRITICAL)

    def _restore_loggers(self) -> None:
        for name, level in self._saved_loggers.items():
            logging.getLogger(name).setLevel(level)
        self._saved_loggers.clear()

    # -- resources ---------------------------------------------------------------------------

    def client(self, service_name: str) -> Any:
        """A boto3 client for ``service_name`` on this stack, independent of the process environment.

        Clients are thread-safe and cached per service (building one loads the service model).
        """
        with self._clients_lock:
            client = self._clients.get(service_name)
            if client is None:
                client = self._session.client(
                    service_name,
                    region_name=self.region,
                    endpoint_url=self.endpoint_url,
                    aws_access_key_id="local",
                    aws_secret_access_key="local",  # noqa: S106 - dummy credentials of the local endpoint
                    config=Config(retries={"max_attempts": 2, "mode": "standard"}, max_pool_connections=32),
                )
                self._clients[service_name] = client
            return client

    def lambda_environment(self) -> dict[str, str]:
        """The Environment Variables given to all five functions."""
        environment = lambda_environment(
            table_name=self.table_name,
            state_machine_arn=self.state_machine_arn,
            signing_secret_id=self.signing_secret_arn or self.signing_secret_name,
            connect_timeout_seconds=self.settings.connect_timeout_seconds,
            read_timeout_seconds=self.settings.read_timeout_seconds,
            log_level=self.settings.log_level,
        )
        environment.update(self.settings.extra_environment)
        return environment

    def _provision(self) -> None:
        iam = self.client("iam")
        lambda_role = iam.create_role(RoleName=LAMBDA_ROLE_NAME, AssumeRolePolicyDocument=_ASSUME_ROLE)["Role"]["Arn"]
        sfn_role = iam.create_role(RoleName=STATE_MACHINE_ROLE_NAME, AssumeRolePolicyDocument=_ASSUME_ROLE)["Role"][
            "Arn"
        ]
        self._provision_table()
        self._provision_queues()
        secret = self.client("secretsmanager").create_secret(
            Name=self.signing_secret_name,
            SecretString=self.signing_secret,
            Description="Standard Webhooks signing key of Notiflow deliveries",
        )
        self.signing_secret_arn = secret["ARN"]
        lambdas = self.client("lambda")
        code = _code_zip()
        environment = self.lambda_environment()
        for step, name in self.function_names.items():
            self.function_arns[step] = lambdas.create_function(
                FunctionName=name,
                Runtime=LAMBDA_RUNTIME,
                Role=lambda_role,
                Handler=handler_path(step),
                Code={"ZipFile": code},
                Timeout=FUNCTION_TIMEOUTS[step],
                MemorySize=256,
                Environment={"Variables": environment},
                Architectures=["arm64"],
            )["FunctionArn"]
        self.definition = render_definition(
            {
                "ValidateFunctionArn": self.function_arns[STEP_VALIDATE],
                "DeduplicateFunctionArn": self.function_arns[STEP_DEDUPLICATE],
                "DeliverFunctionArn": self.function_arns[STEP_DELIVER],
                "FailureGateFunctionArn": self.function_arns[STEP_FAILURE_GATE],
                "NotificationsTableName": self.table_name,
            },
            retry_policy=self.settings.retry_policy,
        )
        created = self.client("stepfunctions").create_state_machine(
            name=self.state_machine_name, definition=self.definition, roleArn=sfn_role, type="STANDARD"
        )
        if created["stateMachineArn"] != self.state_machine_arn:
            raise RuntimeError(f"unexpected state machine ARN {created['stateMachineArn']}")

    def _provision_table(self) -> None:
        dynamodb = self.client("dynamodb")
        dynamodb.create_table(
            TableName=self.table_name,
            KeySchema=[{"AttributeName": TABLE_PARTITION_KEY, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": TABLE_PARTITION_KEY, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.update_time_to_live(
            TableName=self.table_name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TABLE_TTL_ATTRIBUTE},
        )

    def _provision_queues(self) -> None:
        sqs = self.client("sqs")
        self.dlq_url = sqs.create_queue(QueueName=DEFAULT_DLQ_NAME, Attributes={"MessageRetentionPeriod": "1209600"})[
            "QueueUrl"
        ]
        self.dlq_arn = sqs.get_queue_attributes(QueueUrl=self.dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        redrive = {"deadLetterTargetArn": self.dlq_arn, "maxReceiveCount": str(self.settings.max_receive_count)}
        self.queue_url = sqs.create_queue(
            QueueName=DEFAULT_QUEUE_NAME,
            Attributes={
                "VisibilityTimeout": str(self.settings.queue_visibility_timeout_seconds),
                "RedrivePolicy": json.dumps(redrive),
            },
        )["QueueUrl"]
        self.queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]

    def new_poller(self, **overrides: Any) -> SqsPoller:
        """An SQS poller for the intake queue feeding the ingest function (not started)."""
        options: dict[str, Any] = {
            "sqs_client": engine.speed.inprocess_client("sqs", self.region),
            "queue_url": self.queue_url,
            "queue_arn": self.queue_arn,
            "function_name": self.function_names[STEP_INGEST],
            "region": self.region,
            "batch_size": self.settings.poller_batch_size,
            "wait_time_seconds": self.settings.poller_wait_seconds,
            "max_in_flight": self.settings.max_runs_in_flight,
        }
        options.update(overrides)
        return SqsPoller(**options)

    def _stop_running_executions(self) -> None:
        sfn = self.client("stepfunctions")
        for page in sfn.get_paginator("list_executions").paginate(
            stateMachineArn=self.state_machine_arn, statusFilter="RUNNING"
        ):
            for execution in page["executions"]:
                with contextlib.suppress(Exception):
                    sfn.stop_execution(executionArn=execution["executionArn"], error="StackStopped")

    # -- conveniences ------------------------------------------------------------------------

    def send_notification(self, notification: Mapping[str, Any] | str, **attributes: str) -> str:
        """Put one notification on the intake queue; returns the SQS message id."""
        body = notification if isinstance(notification, str) else json.dumps(notification)
        message_attributes = {name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()}
        kwargs: dict[str, Any] = {"QueueUrl": self.queue_url, "MessageBody": body}
        if message_attributes:
            kwargs["MessageAttributes"] = message_attributes
        return str(self.client("sqs").send_message(**kwargs)["MessageId"])

    def execution_arn(self, name: str) -> str:
        """ARN of this stack's execution called ``name``."""
        return execution_arn(self.state_machine_arn, name)

    def describe(self) -> dict[str, Any]:
        """Endpoint and resource names, as printed by ``notiflow local up``."""
        return {
            "endpointUrl": self.endpoint_url,
            "region": self.region,
            "stateMachineArn": self.state_machine_arn,
            "tableName": self.table_name,
            "queueUrl": self.queue_url,
            "dlqUrl": self.dlq_url,
            "signingSecretArn": self.signing_secret_arn,
            "functions": dict(self.function_arns),
            "timeScale": self.settings.time_scale,
        }


@contextlib.contextmanager
def embedded_stack(**settings: Any) -> Iterator[EmbeddedStack]:
    """``with embedded_stack(time_scale=0.001) as stack: ...``."""
    with EmbeddedStack(StackSettings(**settings)) as stack:
        yield stack
