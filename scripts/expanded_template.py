#!/usr/bin/env python3
"""Expands template.yaml with the SAM translator (as `sam deploy` would) and checks
what on-call relies on in the result, not in the SAM shorthand: every function
behind an alias with a CodeDeploy deployment that rolls back on alarms, its own log
group in JSON, the API's access log, the schedule without a fixed name, the alarms
notifying the topic, the table protected. Run with .venv-sam's Python (scripts/test).
Prints one line per check and `expanded template: N passed, M failed`."""

import json
import sys
from pathlib import Path

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parent.parent


class NoManagedPolicies:
    """The template names no managed policies: nothing to look up in AWS."""

    def load(self):
        return {}


def main():
    template = yaml_parse((ROOT / "template.yaml").read_text())
    # `sam deploy` uploads the code and puts its S3 location here.
    template["Globals"]["Function"]["CodeUri"] = "s3://bucket/code.zip"
    expanded = transform(template, {}, NoManagedPolicies())["Resources"]
    by_type = {}
    for name, resource in expanded.items():
        by_type.setdefault(resource["Type"], {})[name] = resource
    results = []

    def check(what, ok, detail=""):
        results.append(ok)
        print(f"{'ok  ' if ok else 'FAIL'} {what}" + ("" if ok else f": {detail}"))

    functions = by_type.get("AWS::Lambda::Function", {})
    aliases = by_type.get("AWS::Lambda::Alias", {})
    groups = by_type.get("AWS::CodeDeploy::DeploymentGroup", {})
    # One per crate under functions/ (the template test checks names and binaries).
    crates = len([d for d in (ROOT / "functions").iterdir() if (d / "Cargo.toml").exists()])
    check(f"{crates} functions, one per crate", len(functions) == crates, sorted(functions))
    for name, function in sorted(functions.items()):
        alias = aliases.get(f"{name}Aliaslive")
        check(f"{name}: alias live", alias is not None and alias["Properties"]["Name"] == "live")
        group = groups.get(f"{name}DeploymentGroup", {}).get("Properties", {})
        alarms = group.get("AlarmConfiguration", {})
        check(f"{name}: deployment rolls back on its alarms",
              alarms.get("Enabled") is True and len(alarms.get("Alarms", [])) >= 3
              and "DEPLOYMENT_STOP_ON_ALARM" in group.get("AutoRollbackConfiguration", {}).get("Events", []),
              json.dumps(group)[:300])
        logging = function["Properties"].get("LoggingConfig", {})
        check(f"{name}: JSON logs to its own log group",
              logging.get("LogFormat") == "JSON" and "Ref" in logging.get("LogGroup", {}), logging)
    schedules = by_type.get("AWS::Scheduler::Schedule", {})
    check("one schedule", len(schedules) == 1, sorted(schedules))
    for name, schedule in schedules.items():
        properties = schedule["Properties"]
        check("the schedule has no fixed name", "Name" not in properties, properties.get("Name"))
        check("the schedule invokes the alias",
              properties["Target"]["Arn"] == {"Ref": "ReverifyPendingFunctionAliaslive"}, properties["Target"])
        check("stale ticks are dropped",
              properties["Target"]["RetryPolicy"].get("MaximumEventAgeInSeconds") == 300)
    # With a fan-out, the worker tasks' rule and its permission invoke the alias too.
    tasks_rule = expanded.get("ReverifyTasksRule", {}).get("Properties", {})
    check("the worker tasks' rule invokes the alias",
          tasks_rule.get("Targets", [{}])[0].get("Arn") == {"Ref": "ReverifyPendingFunctionAliaslive"},
          tasks_rule.get("Targets"))
    permission = expanded.get("ReverifyTasksPermission", {}).get("Properties", {})
    check("the worker tasks' rule may invoke the alias",
          permission.get("FunctionName") == {"Ref": "ReverifyPendingFunctionAliaslive"}, permission)
    stages = by_type.get("AWS::ApiGatewayV2::Stage", {})
    check("the API stage writes an access log",
              any("AccessLogSettings" in s["Properties"] for s in stages.values()), sorted(stages))
    # An HTTP API's authorizer lives in its OpenAPI body.
    schemes = expanded["DomainsApi"]["Properties"]["Body"].get("components", {}).get("securitySchemes", {})
    authorizer = schemes.get("ApiKeyAuthorizer", {}).get("x-amazon-apigateway-authorizer", {})
    check("the authorizer invokes the alias",
          "AuthorizerFunctionAliaslive" in json.dumps(authorizer.get("authorizerUri")), authorizer)
    alarms = by_type.get("AWS::CloudWatch::Alarm", {})
    check("alarms: API, every function's errors and throttles, scheduler, queues, DynamoDB, scheduler outcomes, "
          "event publishing",
          len(alarms) == 2 + 2 * crates + 1 + 2 + 2 + 2 + 2, len(alarms))
    check("every alarm notifies the topic",
          all(a["Properties"].get("AlarmActions") == [{"Ref": "AlarmTopic"}] for a in alarms.values()))
    check("a dashboard", len(by_type.get("AWS::CloudWatch::Dashboard", {})) == 1)
    log_groups = by_type.get("AWS::Logs::LogGroup", {})
    check("every log group has a retention",
          len(log_groups) == crates + 1 and all("RetentionInDays" in g["Properties"] for g in log_groups.values()))
    mappings = by_type.get("AWS::Lambda::EventSourceMapping", {})
    stream = [m["Properties"] for m in mappings.values()
              if m["Properties"].get("EventSourceArn") == {"Fn::GetAtt": ["DomainsTable", "StreamArn"]}]
    check("the publisher reads the table's stream: item failures, bisection, bounded retries, on-failure queue",
          len(stream) == 1
          and stream[0].get("FunctionName") == {"Ref": "PublishEventsFunctionAliaslive"}
          and stream[0].get("FunctionResponseTypes") == ["ReportBatchItemFailures"]
          and stream[0].get("BisectBatchOnFunctionError") is True
          and 0 < stream[0].get("MaximumRetryAttempts", -1) <= 100
          and 0 < stream[0].get("MaximumRecordAgeInSeconds", -1) <= 86400
          and "OnFailure" in stream[0].get("DestinationConfig", {}), stream)
    table = expanded["DomainsTable"]
    check("the table has deletion protection and is retained",
          table["Properties"].get("DeletionProtectionEnabled") is True
          and table.get("DeletionPolicy") == "Retain" and table.get("UpdateReplacePolicy") == "Retain")
    check("the table streams new and old images",
          table["Properties"].get("StreamSpecification", {}).get("StreamViewType") == "NEW_AND_OLD_IMAGES")
    passed = sum(results)
    failed = len(results) - passed
    print(f"expanded template: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
