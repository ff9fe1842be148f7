"""What the engine calls, subclasses or reads in moto 5.2.5 without replacing it: the read half of the table.

:mod:`.internals` holds what the engine replaces (:data:`~notiflow.local.engine.internals.PATCHES`);
together they are the one table the guard test (``tests/local/test_engine_guard.py``) checks row by row.
"""

from __future__ import annotations

from typing import Final

from notiflow.local.engine.rows import TASK, P, Use, use

COST_METER: Final = "wrapped by the cost meter while a Meter is open"

USES: Final[tuple[Use, ...]] = (
    use(
        "moto.awslambda.models:LambdaFunction",
        "invoke",
        "the one in-process entry point of a function",
        params="self, body, request_headers, response_headers",
        calls=("self._invoke_lambda(",),
    ),
    use(
        "moto.awslambda.models:LambdaBackend", "get_function", "lookup", params="self, function_name_or_arn, qualifier"
    ),
    use("moto.awslambda.models:LambdaBackend", "list_functions", "conflict check", params="self, func_version"),
    use("moto.awslambda.utils", "get_backend", "the Lambda backend", params="account_id, region"),
    use(f"{P}.backend.execution:Execution", "_get_start_execution_worker", "builds the worker", params="self"),
    use(f"{P}.backend.execution:Execution", "stop", "wakes a parked run", params="self, stop_date, error, cause"),
    use(
        f"{P}.backend.execution:BaseExecutionWorkerCommunication",
        "_reflect_execution_status",
        "the status comes from the worker's Environment when a run ends",
        calls=("exec_worker.env.program_state()",),
    ),
    use(
        f"{P}.backend.execution_worker:ExecutionWorker",
        "_execution_logic",
        "runs on the pool and calls the two hooks the local worker overrides",
        calls=("self._get_evaluation_entrypoint()", "self._get_evaluation_environment()", "program.eval(self.env)"),
    ),
    use(
        f"{P}.backend.execution_worker:ExecutionWorker",
        "__init__",
        "the local worker passes the mock test case",
        params="self, evaluation_details, exec_comm, cloud_watch_logging_session, activity_store, mock_test_case",
    ),
    use(f"{P}.backend.execution_worker:ExecutionWorker", "start", "a thread per run", calls=("Thread(",)),
    use(
        f"{P}.asl.component.program.program:Program",
        "eval",
        "a thread per program: the pool evaluates it inline instead",
        params="self, env",
        calls=("env.next_state_name = self.start_at.start_at_name", "env.set_timed_out()"),
    ),
    use(f"{P}.asl.component.eval_component:EvalComponent", "heap_key", "primed before sharing", kind=property),
    use(f"{P}.asl.eval.environment:Environment", "set_stop", "StopExecution", params="self, stop_date, cause, error"),
    use(
        f"{P}.asl.eval.event.event_manager:EventManager",
        "add_event",
        "the ExecutionRedriven event",
        params="self, context, event_type, event_details, timestamp, update_source_event_id",
    ),
    use(
        f"{P}.asl.eval.event.event_manager:EventHistoryContext", "__init__", "redrive", params="self, previous_event_id"
    ),
    use(f"{P}.asl.parse.asl_parser:AmazonStateLanguageParser", "parse", "parsed once", params="definition"),
    use(
        f"{P}.asl.component.state.wait.wait_function.wait_function:WaitFunction",
        "_eval_body",
        "a Wait state waits through _wait_interval",
        calls=("self._wait_interval(",),
    ),
    use(
        f"{TASK}.lambda_eval_utils",
        "execute_lambda_function_integration",
        "Lambda tasks go through _invoke_lambda_function",
        calls=("_invoke_lambda_function(",),
    ),
    use(
        f"{P}.asl.utils.boto_client",
        "boto_client_for",
        "task clients come from the boto3 global of its module",
        params="region, service, state_credentials",
        calls=("boto3.client(",),
    ),
    use(
        f"{TASK}.service.state_task_service_sfn:StateTaskServiceSfn",
        "_from_error",
        "a failed startExecution call is the error name StepFunctions.<Code>Exception",
        params="self, env, ex",
        calls=('f"StepFunctions.{error_code}Exception"',),
    ),
    use(f"{P}.asl.eval.evaluation_details:StateMachineDetails", "__init__", "typ", calls=("self.typ = typ",)),
    use(f"{P}.models:StepFunctionsParserBackend", "_validate_definition", "as CreateStateMachine", params="definition"),
    use(
        f"{P}.asl.static_analyser.static_analyser:StaticAnalyser",
        "analyse",
        "its diagnostics",
        params="self, definition",
    ),
    use(f"{P}.asl.static_analyser.express_static_analyser", "ExpressStaticAnalyser", "EXPRESS rules", kind=type),
    use(f"{P}.models:StepFunctionsParserBackend", "get_execution_history", "paged", params="self, execution_arn"),
    use(f"{P}.mocking.mock_config", "MockTestCase", "Step Functions Local test cases", kind=type),
    use(f"{P}.mocking.mock_config", "MockedResponseReturn", "a mocked Return", kind=type),
    use(f"{P}.mocking.mock_config", "MockedResponseThrow", "a mocked Throw", kind=type),
    use(f"{P}.utils", "TMP_THREADS", "moto keeps every interpreter thread here; pruned", kind=list),
    use(
        "moto.stepfunctions.models:StateMachine",
        "_handle_name_input_idempotency",
        "one run per name",
        params="self, name, execution_input",
    ),
    use(
        "moto.core.botocore_stubber:BotocoreStubber",
        "__call__",
        "in-process dispatch",
        params="self, event_name, request, kwargs",
    ),
    use(
        "moto.stepfunctions.models:StateMachineInstance",
        "__init__",
        "the type given at creation is kept in .type (every execution's sm_type is STANDARD): Express runs are "
        "told apart by it and send no status-change events",
        calls=('self.type = sm_type or "STANDARD"', 'self.sm_type = "STANDARD"'),
    ),
    use("moto.events.models", "events_backends", "the default bus of an execution's account and region", kind=dict),
    use(
        "moto.events.models:EventsBackend",
        "__init__",
        "the default bus by name",
        calls=("self.event_buses: dict[str, EventBus] = {}", "self._add_default_event_bus()"),
    ),
    use("moto.events.models:EventBus", "__init__", "a bus keeps its rules by name", calls=("self.rules",)),
    use(
        "moto.events.models:Rule",
        "__init__",
        "a rule's state, pattern, targets",
        calls=("self.state =", "self.event_pattern = EventPattern.load(", "self.targets ="),
    ),
    use("moto.events.models:EventPattern", "get_pattern", "the cheap check before an event is built", params="self"),
    use("moto.events.models:EventPattern", "matches_event", "moto matches the event", params="self, event"),
    use(
        "moto.events.utils:EventTemplateParser",
        "parse",
        "a Lambda target's InputTransformer",
        params="input_template, input_paths_map, event",
    ),
    use("moto.core.config", "default_user_config", "the execution mode switch", kind=dict),
    use("moto.moto_api._internal.models", "moto_api_backend", "reset of every backend"),
    use(
        "moto.moto_server.werkzeug_app:DomainDispatcherApplication",
        "get_backend_for_host",
        "cached per host by the server",
        params="self, host",
    ),
    use("moto.moto_server.werkzeug_app:MotoRequestHandler", "setup", "TCP_NODELAY on each connection"),
    use(
        "moto.core.base_backend:InstanceTrackerMeta",
        "__new__",
        "gives every model class its instances_tracked list",
        calls=("instances_tracked",),
    ),
    # -- wrapped by the cost meter (notiflow/cost/meter.py) while a Meter is open -----------------
    use(
        "moto.awslambda.models:LambdaFunction",
        "invoke",
        COST_METER,
        params="self, body, request_headers, response_headers",
    ),
    use("moto.dynamodb.responses:DynamoHandler", "get_item", COST_METER, params="self"),
    use("moto.dynamodb.responses:DynamoHandler", "put_item", COST_METER, params="self"),
    use("moto.dynamodb.responses:DynamoHandler", "update_item", COST_METER, params="self"),
    use("moto.dynamodb.responses:DynamoHandler", "delete_item", COST_METER, params="self"),
    use("moto.sqs.models:SQSBackend", "send_message", COST_METER),
    use("moto.sqs.models:SQSBackend", "send_message_batch", COST_METER, params="self, queue_name, entries"),
    use("moto.sqs.models:SQSBackend", "receive_message", COST_METER),
    use("moto.sqs.models:SQSBackend", "delete_message", COST_METER, params="self, queue_name, receipt_handle"),
    use("moto.sqs.models:SQSBackend", "delete_message_batch", COST_METER, params="self, queue_name, receipts"),
    use(
        "moto.sqs.models:SQSBackend",
        "change_message_visibility",
        COST_METER,
        params="self, queue_name, receipt_handle, visibility_timeout",
    ),
    use("moto.sqs.models:SQSBackend", "change_message_visibility_batch", COST_METER),
)
