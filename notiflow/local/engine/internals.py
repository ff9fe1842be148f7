"""The one table of moto 5.2.5 internals the engine touches: it drives install, uninstall and the guard test.

:data:`PATCHES` lists every attribute of moto the engine replaces, wraps or adds, with the concern
(module) owning the replacement and why it is needed. :data:`USES` (kept in :mod:`.uses`, the row
shapes in :mod:`.rows`) lists what the engine calls, subclasses or reads without replacing it. Every
row states the shape the engine expects of stock moto (parameter names, a type, snippets of source it
relies on, or the hash of code it mirrors); ``tests/local/test_engine_guard.py`` generates one check
per row, so an upgrade that moves any of them fails loudly, and :mod:`notiflow.local.engine.patching`
applies and removes exactly these rows. A new concern (an Express runner, fault injection,
API-fidelity fixes, the cost meter's seams) adds its module beside the others and its rows here or in
:mod:`.uses`; nothing else keeps a list of moto internals.
"""

from __future__ import annotations

from typing import Final

from notiflow.local.engine import (
    api,
    clock,
    events,
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
from notiflow.local.engine.rows import MOTO_VERSION, TASK, Expect, P, Patch, Use
from notiflow.local.engine.uses import USES

__all__ = ["MOTO_VERSION", "PATCHES", "TASK", "USES", "Expect", "P", "Patch", "Use"]


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
    Patch(
        f"{P}.asl.eval.environment:Environment",
        "get_current_mocked_response",
        mock_configs.current_mocked_response,
        "moto picks a mocked response by the state's retry count: a Choice loop or Map iteration got '0' for ever",
        "mock_configs",
        Expect(params="self", calls=('"RetryCount"', "self.next_state_name")),
    ),
    Patch(
        f"{TASK}.service.state_task_service_aws_sdk:StateTaskServiceAwsSdk",
        "_get_sfn_resource_type",
        mock_configs.sdk_resource_type,
        "aws-sdk task events: resourceType 'aws-sdk' as Step Functions Local and AWS write it",
        "mock_configs",
        Expect(params="self", calls=("self.resource.api_name",)),
    ),
    Patch(
        f"{TASK}.service.state_task_service_aws_sdk:StateTaskServiceAwsSdk",
        "_get_sfn_resource",
        mock_configs.sdk_resource,
        "aws-sdk task events: resource 'service:action' as Step Functions Local and AWS write it",
        "mock_configs",
        Expect(params="self", inherited_from=f"{TASK}.service.state_task_service:StateTaskService"),
    ),
    # -- redrive -------------------------------------------------------------------------------------
    Patch(
        "moto.stepfunctions.responses:StepFunctionResponse",
        "redrive_execution",
        redrive.redrive_execution,
        "RedriveExecution (moto has none; it dispatches an action to the method of the same name)",
        "redrive",
        Expect(absent=True),
    ),
    # -- api: responses shaped as AWS documents them -------------------------------------------------
    *(
        Patch("moto.stepfunctions.responses:StepFunctionResponse", method, replacement, why, "api", expect, wraps)
        for method, replacement, why, expect, wraps in (
            (
                "describe_execution",
                api.describe_execution,
                "inputDetails, outputDetails, redrive fields, TIMED_OUT stopDate, a string output JSON-encoded",
                Expect(params="self"),
                True,
            ),
            (
                "list_executions",
                api.list_executions,
                "moto ignores redriveFilter and lists no redriveCount/redriveDate",
                Expect(params="self", calls=("status_filter=status_filter",)),
                False,
            ),
            (
                "get_execution_history",
                api.get_execution_history,
                "moto ignores reverseOrder, maxResults/nextToken and includeExecutionData",
                Expect(params="self", calls=("get_execution_history(",)),
                False,
            ),
            (
                "validate_state_machine_definition",
                api.validate_state_machine_definition,
                "moto has none (an HTML 500 page)",
                Expect(absent=True),
                False,
            ),
        )
    ),
    # -- events: execution status changes to EventBridge rules ---------------------------------------
    Patch(
        "moto.events.models:Rule",
        "send_to_targets",
        events.send_to_targets,
        "moto cannot deliver to a Lambda target (NotImplementedError): queue it for in-process delivery",
        "events",
        Expect(
            params="self, original_event, transform_input",
            calls=(
                "self.event_pattern.matches_event(original_event)",
                "for target in self.targets:",
                "NotImplementedError",
            ),
        ),
        wraps=True,
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
