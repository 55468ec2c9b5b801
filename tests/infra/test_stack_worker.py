"""The worker of asynchronous turns: its budget, its dispatch grant, its failures' path to an alarm."""

from functions.agent import budget
from synthesis import alias_of, as_list, statement_for, statements

WORKER_HANDLER = "agent.worker.lambda_handler"


def test_the_worker_has_minutes_and_stops_itself_before_lambda_would(synth):
    function = synth.function(WORKER_HANDLER)["Properties"]
    assert budget.ASYNC_TURN_SECONDS < function["Timeout"] == budget.WORKER_TIMEOUT_SECONDS <= 900
    assert budget.ASYNC_MODEL_SECONDS + budget.MEMORY_WRITE_SECONDS + budget.OVERHEAD_SECONDS == budget.ASYNC_TURN_SECONDS


def test_the_api_dispatches_to_the_workers_alias_and_may_invoke_nothing_else(synth):
    alias_id, _, _ = alias_of(synth, WORKER_HANDLER)
    worker_id = synth.template["Resources"][alias_id]["Properties"]["FunctionName"]["Ref"]
    # Invoke's FunctionName takes the alias-qualified name `<function>:live`
    assert synth.function_environment()["WORKER_FUNCTION_NAME"] == f"{worker_id}-GENERATED:live"
    invoke = statement_for(synth, "lambda:InvokeFunction")
    assert invoke["Resource"] == {"Ref": alias_id}
    assert not any("lambda:InvokeFunction" in as_list(s["Action"]) for s in statements(synth, WORKER_HANDLER))


def test_the_worker_runs_turns_with_the_apis_memory_and_model_settings(synth):
    api, worker = synth.function_environment(), synth.function_environment(WORKER_HANDLER)
    assert {k: v for k, v in api.items() if k != "WORKER_FUNCTION_NAME"} == worker


def test_failed_invocations_of_the_alias_are_retried_then_dead_lettered_and_alarmed(synth):
    (config,) = synth.resources("AWS::Lambda::EventInvokeConfig").values()
    alias_id, _, _ = alias_of(synth, WORKER_HANDLER)
    # The configuration is the alias's: it is what applies to the invocations the API sends
    assert config["Properties"]["Qualifier"] == {"Fn::Select": [7, {"Fn::Split": [":", {"Ref": alias_id}]}]}
    ((queue_id, queue),) = [(k, v) for k, v in synth.resources("AWS::SQS::Queue").items()
                            if k.startswith("WorkerDeadLetters")]
    properties = config["Properties"]
    assert (properties["MaximumRetryAttempts"], properties["MaximumEventAgeInSeconds"]) == (2, budget.ASYNC_TURN_SECONDS)
    assert properties["DestinationConfig"] == {"OnFailure": {"Destination": {"Fn::GetAtt": [queue_id, "Arn"]}}}
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    (alarm,) = [a["Properties"] for a in synth.resources("AWS::CloudWatch::Alarm").values()
                if a["Properties"].get("Dimensions", [{}])[0].get("Value") == {"Fn::GetAtt": [queue_id, "QueueName"]}]
    topic = {"Ref": synth.output_ref("AlarmTopicArn")}
    assert alarm["Threshold"] == 1 and alarm["AlarmActions"] == [topic]


def test_the_dashboard_shows_the_worker(synth):
    (dashboard,) = synth.resources("AWS::CloudWatch::Dashboard").values()
    assert "Asynchronous turns" in str(dashboard["Properties"]["DashboardBody"])
