"""EmbeddedStack: moto's server on 127.0.0.1, provisioned like the CDK app, running the real handlers.

One stack serves Step Functions (the real ASL, interpreted), Lambda (the real handlers, called
in-process), DynamoDB, SQS with its DLQ, Secrets Manager and IAM on one HTTP endpoint, so tests,
the demo and ``aws --endpoint-url`` drive the same thing. moto's backends are process-global, so
one stack runs per process at a time.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import socket
import threading
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import boto3
from botocore.config import Config

from infrastructure.config import NotiflowConfig
from infrastructure.signing_key_handler import generate_signing_key
from infrastructure.spec import FunctionSpec, Names, NotiflowSpec, Ref, TargetPolicy, build_spec
from lambdas.shared.constants import STEP_INGEST, DeliveryMode
from notiflow.local import engine
from notiflow.local.reconciler import wire_reconciler
from notiflow.local.sqs_poller import SqsPoller
from notiflow.operate.runs import execution_arn
from workflows.definition import DeliveryRetryPolicy

LOG = logging.getLogger(__name__)

HOST: Final = "127.0.0.1"
REGION: Final = "us-east-1"
ACCOUNT_ID: Final = engine.DEFAULT_ACCOUNT_ID
LAMBDA_ROLE_NAME: Final = "notiflow-lambda"
STATE_MACHINE_ROLE_NAME: Final = "notiflow-state-machine"
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
    """Function name of a Lambda step, e.g. ``notiflow-failure-gate`` (the spec's, as on AWS)."""
    return Names().function(step)


def generate_signing_secret() -> str:
    """A fresh Standard Webhooks secret, made by the generator the deployed stack runs."""
    return generate_signing_key()


@dataclass(frozen=True)
class StackSettings:
    """Everything that can differ between two local stacks.

    Settings left at None take the deployed value from the spec (infrastructure/spec.py), so a
    default local stack runs what AWS runs (``delivery_mode`` included: ``fast-path``, ingest runs
    the Express workflow with StartSyncExecution); only ``target_policy`` differs by default
    (receivers on 127.0.0.1 are allowed, see :class:`TargetPolicy`). Both state machines are
    provisioned in either mode.
    """

    port: int | None = None
    stage: str | None = None
    """Names every resource ``notiflow-<stage>-*`` as the deployed stage (None: ``notiflow-*``)."""
    time_scale: float = 1.0
    max_wait_seconds: float | None = None
    connect_timeout_seconds: float | None = None
    read_timeout_seconds: float | None = None
    retry_policy: DeliveryRetryPolicy | None = None
    queue_visibility_timeout_seconds: int | None = None
    max_receive_count: int | None = None
    target_policy: TargetPolicy = TargetPolicy.LOCAL
    delivery_mode: DeliveryMode | str | None = None
    fast_path_retries: int | None = None
    fast_path_lease_seconds: int | None = None
    """An Express claim's lease; None derives it as deployed. Tests shorten it with their time scale."""
    host_max_in_flight: int | None = None
    host_limits: Mapping[str, int] | str | None = None
    start_poller: bool = True
    poller_batch_size: int | None = None
    ingest_max_concurrency: int | None = None
    """Ingest invocations the SQS poller runs at once; None: the spec's (``ingestMaxConcurrency``)."""
    poller_wait_seconds: int = 1
    engine_workers: int = 4
    """Executions running at once; a run waiting in a Retry back-off or a Wait state holds none."""
    max_runs_in_flight: int = 16
    """The SQS poller takes no more messages while this many runs wait for or hold a worker."""
    execution_retention: int | None = 1000
    """Finished runs kept; older ones are evicted (ExecutionDoesNotExist), their records stay. None: all."""
    express_retention: int | None = 1000
    """Finished Express runs kept apart (AWS keeps none; locally they stay visible until evicted). None: all."""
    faults: str | None = None
    """Platform faults to inject, e.g. ``lambda-throttle=0.05,ddb-throttle=0.05`` (README "Fault injection")."""
    fault_seed: int = 0
    fault_report: str | None = None
    """A JSON file the fault report is kept in, for another process to read; None: in memory only."""
    signing_secret: str | None = None
    log_level: str | None = None
    quiet: bool = True
    extra_environment: Mapping[str, str] = field(default_factory=dict)

    def notiflow_config(self) -> NotiflowConfig:
        """The deployment configuration these settings describe: the target policy plus what was set."""
        chosen = {
            "connect_timeout_seconds": self.connect_timeout_seconds,
            "read_timeout_seconds": self.read_timeout_seconds,
            "max_receive_count": self.max_receive_count,
            "log_level": self.log_level,
            "delivery_mode": self.delivery_mode,
            "fast_path_retries": self.fast_path_retries,
            "host_max_in_flight": self.host_max_in_flight,
            "host_limits": self.host_limits,
            "ingest_max_concurrency": self.ingest_max_concurrency,
            "stage": self.stage,
        }
        fields = {**TargetPolicy(self.target_policy).config_fields()}
        fields.update({name: value for name, value in chosen.items() if value is not None})
        return NotiflowConfig.model_validate(fields)


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
        self.config = self.settings.notiflow_config()
        self.spec: NotiflowSpec = build_spec(self.config)
        self.table_name = self.spec.table.name
        self.state_machine_name = self.spec.state_machine.name
        self.state_machine_arn = f"arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:{self.state_machine_name}"
        self.fast_path_state_machine_name = self.spec.fast_path.name
        self.fast_path_state_machine_arn = (
            f"arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:{self.fast_path_state_machine_name}"
        )
        self.delivery_mode = self.spec.delivery_mode
        self.host_leases_table_name = self.spec.host_leases.name
        self.signing_secret_name = self.spec.names.signing_secret
        self.function_names = {step: function.name for step, function in self.spec.functions.items()}
        self.function_arns: dict[str, str] = {}
        self.queue_url = ""
        self.queue_arn = ""
        self.dlq_url = ""
        self.dlq_arn = ""
        self.signing_secret = ""
        self.signing_secret_arn = ""
        self.definition = ""
        self.fast_path_definition = ""
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
            express_retention_limit=self.settings.express_retention,
        )
        engine.cold_start()
        if self.settings.signing_secret is None and _process_secret is None:
            _process_secret = generate_signing_secret()
        self.signing_secret = self.settings.signing_secret or _process_secret or ""
        for name in self.lambda_environment():
            self._saved_environ.setdefault(name, os.environ.get(name))
        self._provision()
        # Faults start once everything is provisioned: they hit the runs, not the setup.
        engine.faults.configure(
            self.settings.faults, seed=self.settings.fault_seed, report_path=self.settings.fault_report
        )
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
        engine.faults.clear()
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
        # StartSyncExecution's endpoint carries a "sync-" host prefix on AWS; here every service is on one endpoint.
        self._set_env("AWS_DISABLE_HOST_PREFIX_INJECTION", "true")
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

    def _resolve(self, ref: Ref) -> str:
        values = {
            Ref.TABLE_NAME: self.table_name,
            Ref.STATE_MACHINE_ARN: self.state_machine_arn,
            Ref.FAST_PATH_STATE_MACHINE_ARN: self.fast_path_state_machine_arn,
            Ref.HOST_LEASES_TABLE_NAME: self.host_leases_table_name,
            Ref.SIGNING_SECRET_ARN: self.signing_secret_arn or self.signing_secret_name,
        }
        return values[ref]

    def lambda_environment(self) -> dict[str, str]:
        """The Environment Variables of all five functions: the union of their spec environments.

        On AWS each function has its own process and only the variables its step needs (the spec's
        refs: ingest the state machine ARN, deliver the secret ARN). Here the handlers share one
        process and the settings it caches, so every function gets the union; the spec's shared
        part is identical for all five, and the union only adds those resource ARNs.
        """
        merged: dict[str, str] = {}
        for function in self.spec.functions.values():
            merged.update(function.resolved_environment(self._resolve))
        merged.update(self.settings.extra_environment)
        return merged

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
        reconcile_arn = self._provision_functions(lambda_role)
        self._provision_state_machines(sfn_role)
        wire_reconciler(
            self.spec, self.client("events"), function_arn=reconcile_arn, state_machine_arn=self.state_machine_arn
        )

    def _provision_state_machines(self, role_arn: str) -> None:
        """Both workflows, as the CDK app renders them (a local retry override replaces the schedule)."""
        machine = replace(
            self.spec.state_machine, retry_policy=self.settings.retry_policy or self.spec.state_machine.retry_policy
        )
        fast_path = replace(
            self.spec.fast_path,
            retry_policy=machine.retry_policy,
            lease_override_seconds=self.settings.fast_path_lease_seconds,
        )
        self.definition = machine.render(self.function_arns, self.table_name)
        self.fast_path_definition = fast_path.render(
            self.function_arns,
            self.table_name,
            self.state_machine_arn,
            execution_arn(self.state_machine_arn, ""),
        )
        sfn = self.client("stepfunctions")
        for name, definition, kind, arn in (
            (machine.name, self.definition, machine.type, self.state_machine_arn),
            (fast_path.name, self.fast_path_definition, fast_path.type, self.fast_path_state_machine_arn),
        ):
            created = sfn.create_state_machine(name=name, definition=definition, roleArn=role_arn, type=kind)
            if created["stateMachineArn"] != arn:
                raise RuntimeError(f"unexpected state machine ARN {created['stateMachineArn']}")

    def _provision_functions(self, role_arn: str) -> str:
        """The step functions and the reconciler, from their specs; returns the reconciler's ARN."""
        lambdas = self.client("lambda")
        code = _code_zip()
        environment = self.lambda_environment()

        def create(function: FunctionSpec) -> str:
            return str(
                lambdas.create_function(
                    FunctionName=function.name,
                    Description=function.description,
                    Runtime=function.runtime,
                    Role=role_arn,
                    Handler=function.handler,
                    Code={"ZipFile": code},
                    Timeout=function.timeout_seconds,
                    MemorySize=function.memory_mb,
                    Environment={"Variables": environment},
                    Architectures=[function.architecture],
                )["FunctionArn"]
            )

        for step, function in self.spec.functions.items():
            self.function_arns[step] = create(function)
        return create(self.spec.reconciler.function)

    def _provision_table(self) -> None:
        dynamodb = self.client("dynamodb")
        dynamodb.create_table(**self.spec.table.create_table_request())
        leases = self.spec.host_leases
        dynamodb.create_table(
            TableName=leases.name,
            KeySchema=[{"AttributeName": leases.partition_key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": leases.partition_key, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for table in (self.spec.table, leases):
            dynamodb.update_time_to_live(
                TableName=table.name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
            )

    def _provision_queues(self) -> None:
        intake = self.spec.intake
        sqs = self.client("sqs")
        self.dlq_url = sqs.create_queue(
            QueueName=intake.dead_letter_queue_name,
            Attributes={"MessageRetentionPeriod": str(intake.dead_letter_retention_seconds)},
        )["QueueUrl"]
        self.dlq_arn = sqs.get_queue_attributes(QueueUrl=self.dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        redrive = {"deadLetterTargetArn": self.dlq_arn, "maxReceiveCount": str(intake.max_receive_count)}
        visibility = self.settings.queue_visibility_timeout_seconds or intake.visibility_timeout_seconds
        self.queue_url = sqs.create_queue(
            QueueName=intake.queue_name,
            Attributes={
                "VisibilityTimeout": str(visibility),
                "MessageRetentionPeriod": str(intake.retention_seconds),
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
            "batch_size": self.settings.poller_batch_size or self.spec.intake.batch_size,
            "wait_time_seconds": self.settings.poller_wait_seconds,
            "max_in_flight": self.settings.max_runs_in_flight,
            "max_concurrency": self.spec.intake.max_concurrency,
        }
        options.update(overrides)
        return SqsPoller(**options)

    def _stop_running_executions(self) -> None:
        sfn = self.client("stepfunctions")
        for machine in (self.state_machine_arn, self.fast_path_state_machine_arn):
            with contextlib.suppress(Exception):
                for page in sfn.get_paginator("list_executions").paginate(
                    stateMachineArn=machine, statusFilter="RUNNING"
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
            "fastPathStateMachineArn": self.fast_path_state_machine_arn,
            "deliveryMode": self.delivery_mode.value,
            "stage": self.config.stage,
            "tableName": self.table_name,
            "hostLeasesTableName": self.host_leases_table_name,
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
