"""Suppressed writes -> metric -> alarm -> encrypted topic -> e-mail; and the dashboard."""

import json


def test_alarm_fires_on_ten_suppressed_writes_in_one_five_minute_period(synth):
    alarm = synth.alarm()["Properties"]

    assert alarm["Statistic"] == "Sum"
    assert alarm["Threshold"] == 10
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["Period"] == 300
    assert alarm["EvaluationPeriods"] == 1
    assert alarm.get("DatapointsToAlarm", 1) == 1
    assert alarm["TreatMissingData"] == "notBreaching"


def test_alarm_and_ok_notify_the_encrypted_topic(synth):
    alarm = synth.alarm()["Properties"]
    topic_id = synth.output_ref("AlarmTopicArn")
    topic = synth.template["Resources"][topic_id]["Properties"]
    key_id = topic["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = synth.template["Resources"][key_id]["Properties"]

    assert alarm["AlarmActions"] == [{"Ref": topic_id}]
    assert alarm["OKActions"] == [{"Ref": topic_id}]
    assert key["EnableKeyRotation"] is True
    # CloudWatch must be able to use the key, or the encrypted topic silently drops alarms
    cloudwatch = [
        s for s in key["KeyPolicy"]["Statement"] if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert cloudwatch and {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(cloudwatch[0]["Action"])


def test_topic_refuses_publishers_without_tls(synth):
    (policy,) = synth.resources("AWS::SNS::TopicPolicy").values()
    (deny,) = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_email_subscription_only_when_an_address_is_given(synth, variant):
    assert not synth.resources("AWS::SNS::Subscription")
    subscription = variant.one("AWS::SNS::Subscription")["Properties"]
    assert (subscription["Protocol"], subscription["Endpoint"]) == ("email", "oncall@example.com")
    assert subscription["TopicArn"] == {"Ref": variant.output_ref("AlarmTopicArn")}


def test_dashboard_shows_suppressed_writes_latency_errors_and_tokens(synth):
    body = synth.one("AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"]
    rendered = json.dumps(body)

    for metric in ("TurnLatency", "InputTokens", "OutputTokens", "Errors", "Throttles", "5xx"):
        assert f'\\"{metric}\\"' in rendered, metric
    assert "SuppressedWritesAlarm" in rendered  # the alarm widget, with its threshold line
    assert '\\"service\\",\\"agent\\"' in rendered  # Powertools' EMF dimension


# How a one-period alarm moves on each period's data point (None: no data point), per TreatMissingData,
# as CloudWatch documents it: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html#alarms-and-missing-data
MISSING_DATA = {
    "breaching": lambda state: "ALARM",
    "notBreaching": lambda state: "OK",
    "ignore": lambda state: state,  # the current state is kept
    "missing": lambda state: "INSUFFICIENT_DATA",
}


def alarm_state(alarm: dict, data_points: list[float | None]) -> str:
    state = "INSUFFICIENT_DATA"
    for value in data_points:
        if value is None:
            state = MISSING_DATA[alarm.get("TreatMissingData", "missing")](state)
        else:
            state = "ALARM" if value >= alarm["Threshold"] else "OK"
    return state


# SQS stops reporting a queue that sees no API call for hours (infra/monitoring.py): a day of silence.
SILENT_DAY = [None] * (24 * 12)


def test_dead_letter_alarms_stay_in_alarm_while_letters_remain_and_stay_quiet_when_empty(synth):
    queues = {k for k in synth.resources("AWS::SQS::Queue")}
    alarms = [a["Properties"] for a in synth.resources("AWS::CloudWatch::Alarm").values()
              if a["Properties"].get("Namespace") == "AWS/SQS"]
    assert {a["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for a in alarms} == queues
    for alarm in alarms:
        # Given a letter that lands, then a queue nobody touches, whose metrics SQS stops reporting
        # Then the alarm is still in ALARM a day later
        assert alarm_state(alarm, [0, 0, 1, 1, *SILENT_DAY]) == "ALARM"
        # And an empty queue that goes quiet never fires it, and one read empty clears it
        assert alarm_state(alarm, [0, 0, *SILENT_DAY]) == "OK"
        assert alarm_state(alarm, [1, *SILENT_DAY, 0]) == "OK"
