"""The one table of moto 5.2.5 internals the engine touches: it drives install, uninstall and the guard test.

:data:`PATCHES` lists every attribute of moto the engine replaces, wraps or adds, with the concern
(module) owning the replacement and why it is needed. :data:`USES` lists what the engine calls,
subclasses or reads without replacing it. Every row states the shape the engine expects of stock
moto (parameter names, a type, snippets of source it relies on, or the hash of code it mirrors);
``tests/local/test_engine_guard.py`` generates one check per row, so an upgrade that moves any of
them fails loudly, and :mod:`notiflow.local.engine.patching` applies and removes exactly these rows.
A new concern (an Express runner, fault injection, API-fidelity fixes) adds its module beside the
others and its rows here; nothing else keeps a list of moto internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from notiflow.local.engine import (
    clock,
    executions,
    express,
    fault_seams,
    mock_configs,
    redrive,
    retention,
    runtime,
    speed,
    storage,
)

MOTO_VERSION: Final = "5.2.5"
P: Final = "moto.stepfunctions.parser"
TASK: Final = f"{P}.asl.component.state.exec.state_task"


@dataclass(frozen=True)
class Expect:
    """The shape of a stock moto attribute the engine relies on; fields left empty are not checked."""

    params: str | None = None
    """Parameter names of a function or method, comma-separated, in order."""
    kind: type | None = None
    """The attribute is an instance of this type (``type`` for a class)."""
    module: str | None = None
    """The attribute is this module (e.g. ``time`` inside retrier_decl)."""
    calls: tuple[str, ...] = ()
    """Snippets the attribute's source must contain (a hook it calls, a global it reads)."""
    source_sha256: str | None = None
    """Hash of the source of a function the replacement mirrors: any change in moto must be reviewed."""
    absent: bool = False
    """The attribute must not exist: the engine adds it."""
    inherited_from: str | None = None
    """The owner must not define the attribute itself but inherit it from this ``module:Class``."""

    @property
    def param_names(self) -> tuple[str, ...] | None:
        """``params`` as a tuple."""
        return None if self.params is None else tuple(name.strip() for name in self.params.split(","))


@dataclass(frozen=True)
class Patch:
    """One replaced, wrapped or added attribute of moto."""

    owner: str
    """``package.module`` or ``package.module:Class``."""
    attribute: str
    replacement: Any
    """The new value; when ``wraps``, a factory called with the stock value."""
    why: str
    concern: str
    expect: Expect = field(default_factory=Expect)
    wraps: bool = False

    @property
    def key(self) -> str:
        """``owner.attribute``, unique in the table."""
        return f"{self.owner}.{self.attribute}"


@dataclass(frozen=True)
class Use:
    """An internal the engine calls, subclasses or reads without replacing it."""

    owner: str
    attribute: str
    why: str
    expect: Expect = field(default_factory=Expect)

    @property
    def key(self) -> str:
        """``owner.attribute``."""
        return f"{self.owner}.{self.attribute}"


_WRITES: Final = {
    "put_item": "self, table_name, item_attrs, expected, condition_expression, expression_attribute_names, "
    "expression_attribute_values, overwrite, return_values_on_condition_check_failure",
    "update_item": "self, table_name, key, update_expression, expression_attribute_names, "
    "expression_attribute_values, attribute_updates, expected, condition_expression, "
    "return_values_on_condition_check_failure",
    "delete_item": "self, table_name, key, expression_attribute_names, expression_attribute_values, "
    "condition_expression, return_values_on_condition_check_failure",
    "transact_write_items": "self, transact_items",
    "batch_write_item": "self",
}

_READS: Final = {
    "get_item": "self, table_name, keys, projection_expressions",
    "query": "self, table_name, hash_key_dict, range_comparison, range_value_dicts, limit, exclusive_start_key, "
    "scan_index_forward, projection_expressions, index_name, consistent_read, expr_names, expr_values, "
    "filter_expression, hash_key_conditions, range_key_conditions, filter_kwargs",
}

PATCHES: Final[tuple[Patch, ...]] = (
    # -- runtime: the in-process Lambda runtime ------------------------------------------------------
    Patch(
        "moto.awslambda.models:LambdaFunction",
        "_invoke_lambda",
        runtime.moto_invoke_lambda,
        "moto runs a function in Docker; run its configured handler in this process instead",
        "runtime",
        Expect(params="self, event", calls=("docker",)),
    ),
    Patch(
        "moto.awslambda.models:LambdaBackend",
        "create_function",
        runtime.refuse_conflicting_environment,
        "all handlers share one os.environ: refuse a function whose Environment contradicts another's",
        "runtime",
        Expect(params="self, spec"),
        wraps=True,
    ),
    # -- clock: time scale, parked waits -------------------------------------------------------------
    Patch(
        f"{P}.asl.component.common.retry.retrier_decl",
        "time",
        clock.RETRY_CLOCK,
        "a Retry back-off is retrier_decl's time.sleep: scale it, and park the run instead of sleeping",
        "clock",
        Expect(module="time"),
    ),
    Patch(
        f"{P}.asl.component.common.retry.retrier_decl:RetrierDecl",
        "_eval_body",
        clock.remember_retry_env,
        "the back-off needs the run's Environment to end early when the run is stopped",
        "clock",
        Expect(params="self, env", calls=("time.sleep(",)),
        wraps=True,
    ),
    Patch(
        f"{P}.asl.component.state.wait.wait_function.wait_function:WaitFunction",
        "_wait_interval",
        clock.wait_interval,
        "a Wait state blocks its thread: scale the wait and park the run instead",
        "clock",
        Expect(params="self, env, wait_seconds", calls=("program_state_event.wait(",)),
    ),
    # -- executions: the local Execution on the worker pool ------------------------------------------
    Patch(
        f"{P}.models",
        "Execution",
        executions.LocalExecution,
        "moto's start_execution builds this class: runs on the worker pool, mock test cases, redrive",
        "executions",
        Expect(kind=type),
    ),
    Patch(
        f"{P}.models:StepFunctionsParserBackend",
        "start_execution",
        executions.start_execution,
        "'arn#TestCase' selects a mock test case; names are validated and never None",
        "executions",
        Expect(
            params="self, state_machine_arn, name, execution_input, trace_header",
            calls=("copy.deepcopy(", "execution = Execution(", "execution.start()"),
        ),
        wraps=True,
    ),
    Patch(
        f"{P}.models",
        "copy",
        executions.SNAPSHOT_COPY,
        "start_execution deep-copies the state machine per run, kept forever by instances_tracked: one per revision",
        "executions",
        Expect(module="copy"),
    ),
    Patch(
        f"{P}.asl.component.state.exec.execute_state:ExecutionState",
        "_evaluate_with_timeout",
        executions.evaluate_with_timeout,
        "moto runs every task attempt on a new thread; on the worker pool the task runs inline",
        "executions",
        Expect(params="self, env", source_sha256="c56deda08a42e98d3958bfb2ab95de74c7ec7a515085614a80e1ea4948722485"),
        wraps=True,
    ),
    # -- express: Express state machines ------------------------------------------------------------
    Patch(
        "moto.stepfunctions.responses:StepFunctionResponse",
        "start_sync_execution",
        express.start_sync_execution,
        "StartSyncExecution (moto has none): an Express run, answered when it ends, with billingDetails",
        "express",
        Expect(absent=True),
    ),
    Patch(
        "moto.stepfunctions.models:StepFunctionBackend",
        "_validate_execution_arn",
        express.validate_execution_arn,
        "moto accepts only ':execution:' ARNs; Express runs are 'arn:...:express:<machine>:<name>:<id>'",
        "express",
        Expect(params="self, execution_arn", calls=("accepted_exec_arn_format",)),
        wraps=True,
    ),
    Patch(
        f"{TASK}.service.state_task_service_sfn:StateTaskServiceSfn",
        "_normalise_parameters",
        express.startexecution_parameters,
        "the states:startExecution task passes ASL names (StateMachineArn, Name, Input) to boto unconverted",
        "express",
        Expect(params="self, parameters, boto_service_name, service_action_name", calls=('"start_execution"',)),
        wraps=True,
    ),
    Patch(
        f"{TASK}.service.state_task_service_sfn:StateTaskServiceSfn",
        "_normalise_response",
        express.startexecution_result,
        "the states:startExecution task's result reaches the state with boto's names; AWS gives ExecutionArn",
        "express",
        Expect(
            params="self, response, boto_service_name, service_action_name",
            inherited_from=f"{TASK}.service.state_task_service:StateTaskService",
        ),
        wraps=True,
    ),
    # -- mock_configs --------------------------------------------------------------------------------
    Patch(
        f"{TASK}.service.state_task_service_dynamodb:StateTaskServiceDynamoDB",
        "_from_error",
        mock_configs.keep_mocked_error_name,
        "a mocked Throw on a DynamoDB task fails with the mocked error name, as in Step Functions Local",
        "mock_configs",
        Expect(params="self, env, ex"),
        wraps=True,
    ),
    # -- redrive -------------------------------------------------------------------------------------
    Patch(
        "moto.stepfunctions.responses:StepFunctionResponse",
        "describe_execution",
        redrive.describe_execution,
        "DescribeExecution reports redriveCount, redriveDate and redriveStatus",
        "redrive",
        Expect(params="self"),
        wraps=True,
    ),
    Patch(
        "moto.stepfunctions.responses:StepFunctionResponse",
        "redrive_execution",
        redrive.redrive_execution,
        "RedriveExecution (moto has none; it dispatches an action to the method of the same name)",
        "redrive",
        Expect(absent=True),
    ),
    # -- storage: atomic conditional writes ----------------------------------------------------------
    *(
        Patch(
            "moto.dynamodb.models:DynamoDBBackend",
            method,
            storage.atomic,
            "moto checks a ConditionExpression and then writes without a lock; DynamoDB writes atomically",
            "storage",
            Expect(params=params),
            wraps=True,
        )
        for method, params in _WRITES.items()
    ),
    # -- faults: injection at the seams (idle unless a spec is configured) ---------------------------
    Patch(
        f"{P}.asl.component.state.state:CommonStateField",
        "_eval_body",
        fault_seams.crash_after_state,
        "crash-after-state: a run may be lost right after a state completed (its exit event written)",
        "faults",
        Expect(params="self, env", calls=("self._set_next(env)", "state_exited_event_type")),
        wraps=True,
    ),
    *(
        Patch(
            "moto.dynamodb.models:DynamoDBBackend",
            method,
            fault_seams.throttled,
            "ddb-throttle: the backend refuses a read with ProvisionedThroughputExceededException (writes: storage)",
            "faults",
            Expect(params=params),
            wraps=True,
        )
        for method, params in _READS.items()
    ),
    Patch(
        "requests.adapters:HTTPAdapter",
        "send",
        fault_seams.crash_after_send,
        "crash-after-send: not moto, but the one place a handler's HTTP request is known to have been answered",
        "faults",
        Expect(params="self, request, stream, timeout, verify, cert, proxies"),
        wraps=True,
    ),
    # -- retention: bounded memory -------------------------------------------------------------------
    Patch(
        "moto.dynamodb.models.dynamo_type:Item",
        "__new__",
        staticmethod(retention.untracked_new),
        "moto's instances_tracked keeps every Item ever built (a scan copies every item): keep none",
        "retention",
        Expect(inherited_from="moto.core.common_models:BaseModel"),
    ),
    Patch(
        "moto.sqs.models:Message",
        "__new__",
        staticmethod(retention.untracked_new),
        "moto's instances_tracked keeps every SQS Message and every received copy: keep none",
        "retention",
        Expect(inherited_from="moto.core.common_models:BaseModel"),
    ),
    # -- speed ---------------------------------------------------------------------------------------
    Patch(
        f"{P}.asl.utils.boto_client",
        "boto3",
        speed.TASK_CLIENTS,
        "boto_client_for builds a client per task and calls moto over HTTP: serve cached in-process clients",
        "speed",
        Expect(module="boto3"),
    ),
    Patch(
        f"{P}.asl.utils.json_path",
        "parse",
        speed.cached_jsonpath,
        "every JSONPath evaluation builds a PLY parser (~5 ms): parse each expression once",
        "speed",
        Expect(params="path, debug"),
        wraps=True,
    ),
    Patch(
        f"{P}.asl.component.common.path.result_path",
        "parse",
        speed.cached_jsonpath,
        "ResultPath parses its JSONPath at every state exit: parse each expression once",
        "speed",
        Expect(params="string"),
        wraps=True,
    ),
    Patch(
        f"{TASK}.lambda_eval_utils",
        "_invoke_lambda_function",
        speed.invoke_lambda_task,
        "a Lambda task reaches the function without the Invoke API's serialisation and routing (~5 ms)",
        "speed",
        Expect(params="parameters, region, state_credentials", calls=("lambda_client.invoke(",)),
        wraps=True,
    ),
    *(
        Patch(
            owner,
            "copy",
            speed.STATE_DATA_COPY,
            "the interpreter deep-copies state data some hundred times per run: a pickle round trip, ~3x faster",
            "speed",
            Expect(module="copy"),
        )
        for owner in (
            f"{P}.asl.eval.states",
            f"{P}.asl.component.common.string.string_expression",
            f"{P}.asl.component.common.path.result_path",
        )
    ),
    Patch(
        "moto.core.responses",
        "method_names_from_class",
        speed.method_names_once,
        "every request lists the response class's methods with inspect.getmembers: list them once",
        "speed",
        Expect(params="clazz", calls=("inspect.getmembers(",)),
        wraps=True,
    ),
    Patch(
        "moto.sqs.models",
        "unix_time",
        speed.epoch_seconds,
        "SQS checks every message against this clock on each send and receive; moto's costs ~2 us",
        "speed",
        Expect(params="dt"),
        wraps=True,
    ),
    Patch(
        "moto.sqs.models",
        "unix_time_millis",
        speed.epoch_millis,
        "the same clock in milliseconds (Message.visible, Message.delayed)",
        "speed",
        Expect(params="dt"),
        wraps=True,
    ),
    Patch(
        "moto.sqs.models:SQSBackend",
        "is_message_valid_based_on_retention_period",
        speed.message_within_retention,
        "moto scans the whole queue three times per received message to read one queue attribute",
        "speed",
        Expect(params="self, queue_name, message", calls=("get_queue_attributes(",)),
    ),
)


def _use(owner: str, attribute: str, why: str, **expect: Any) -> Use:
    return Use(owner, attribute, why, Expect(**expect))


USES: Final[tuple[Use, ...]] = (
    _use(
        "moto.awslambda.models:LambdaFunction",
        "invoke",
        "the one in-process entry point of a function",
        params="self, body, request_headers, response_headers",
        calls=("self._invoke_lambda(",),
    ),
    _use(
        "moto.awslambda.models:LambdaBackend", "get_function", "lookup", params="self, function_name_or_arn, qualifier"
    ),
    _use("moto.awslambda.models:LambdaBackend", "list_functions", "conflict check", params="self, func_version"),
    _use("moto.awslambda.utils", "get_backend", "the Lambda backend", params="account_id, region"),
    _use(f"{P}.backend.execution:Execution", "_get_start_execution_worker", "builds the worker", params="self"),
    _use(f"{P}.backend.execution:Execution", "stop", "wakes a parked run", params="self, stop_date, error, cause"),
    _use(
        f"{P}.backend.execution:BaseExecutionWorkerCommunication",
        "_reflect_execution_status",
        "the status comes from the worker's Environment when a run ends",
        calls=("exec_worker.env.program_state()",),
    ),
    _use(
        f"{P}.backend.execution_worker:ExecutionWorker",
        "_execution_logic",
        "runs on the pool and calls the two hooks the local worker overrides",
        calls=("self._get_evaluation_entrypoint()", "self._get_evaluation_environment()", "program.eval(self.env)"),
    ),
    _use(
        f"{P}.backend.execution_worker:ExecutionWorker",
        "__init__",
        "the local worker passes the mock test case",
        params="self, evaluation_details, exec_comm, cloud_watch_logging_session, activity_store, mock_test_case",
    ),
    _use(f"{P}.backend.execution_worker:ExecutionWorker", "start", "a thread per run", calls=("Thread(",)),
    _use(
        f"{P}.asl.component.program.program:Program",
        "eval",
        "a thread per program: the pool evaluates it inline instead",
        params="self, env",
        calls=("env.next_state_name = self.start_at.start_at_name", "env.set_timed_out()"),
    ),
    _use(f"{P}.asl.component.eval_component:EvalComponent", "heap_key", "primed before sharing", kind=property),
    _use(f"{P}.asl.eval.environment:Environment", "set_stop", "StopExecution", params="self, stop_date, cause, error"),
    _use(
        f"{P}.asl.eval.environment:Environment",
        "get_current_mocked_response",
        "mocked responses are picked by the state's retry count",
        calls=('"RetryCount"',),
    ),
    _use(
        f"{P}.asl.eval.event.event_manager:EventManager",
        "add_event",
        "the ExecutionRedriven event",
        params="self, context, event_type, event_details, timestamp, update_source_event_id",
    ),
    _use(
        f"{P}.asl.eval.event.event_manager:EventHistoryContext", "__init__", "redrive", params="self, previous_event_id"
    ),
    _use(f"{P}.asl.parse.asl_parser:AmazonStateLanguageParser", "parse", "parsed once", params="definition"),
    _use(
        f"{P}.asl.component.state.wait.wait_function.wait_function:WaitFunction",
        "_eval_body",
        "a Wait state waits through _wait_interval",
        calls=("self._wait_interval(",),
    ),
    _use(
        f"{TASK}.lambda_eval_utils",
        "execute_lambda_function_integration",
        "Lambda tasks go through _invoke_lambda_function",
        calls=("_invoke_lambda_function(",),
    ),
    _use(
        f"{P}.asl.utils.boto_client",
        "boto_client_for",
        "task clients come from the boto3 global of its module",
        params="region, service, state_credentials",
        calls=("boto3.client(",),
    ),
    _use(
        f"{TASK}.service.state_task_service_sfn:StateTaskServiceSfn",
        "_from_error",
        "a failed startExecution call is the error name StepFunctions.<Code>Exception",
        params="self, env, ex",
        calls=('f"StepFunctions.{error_code}Exception"',),
    ),
    _use(
        "moto.stepfunctions.models:StateMachineInstance",
        "__init__",
        "the type given at creation is kept in .type (sm_type stays STANDARD)",
        calls=('self.type = sm_type or "STANDARD"',),
    ),
    _use(f"{P}.asl.eval.evaluation_details:StateMachineDetails", "__init__", "typ", calls=("self.typ = typ",)),
    _use(f"{P}.mocking.mock_config", "MockTestCase", "Step Functions Local test cases", kind=type),
    _use(f"{P}.mocking.mock_config", "MockedResponseReturn", "a mocked Return", kind=type),
    _use(f"{P}.mocking.mock_config", "MockedResponseThrow", "a mocked Throw", kind=type),
    _use(f"{P}.utils", "TMP_THREADS", "moto keeps every interpreter thread here; pruned", kind=list),
    _use(
        "moto.stepfunctions.models:StateMachine",
        "_handle_name_input_idempotency",
        "one run per name",
        params="self, name, execution_input",
    ),
    _use(
        "moto.core.botocore_stubber:BotocoreStubber",
        "__call__",
        "in-process dispatch",
        params="self, event_name, request, kwargs",
    ),
    _use("moto.core.config", "default_user_config", "the execution mode switch", kind=dict),
    _use("moto.moto_api._internal.models", "moto_api_backend", "reset of every backend"),
    _use(
        "moto.moto_server.werkzeug_app:DomainDispatcherApplication",
        "get_backend_for_host",
        "cached per host by the server",
        params="self, host",
    ),
    _use("moto.moto_server.werkzeug_app:MotoRequestHandler", "setup", "TCP_NODELAY on each connection"),
    _use(
        "moto.core.base_backend:InstanceTrackerMeta",
        "__new__",
        "gives every model class its instances_tracked list",
        calls=("instances_tracked",),
    ),
)
