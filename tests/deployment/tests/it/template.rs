//! `template.yaml` against the workspace: every function's binary exists, every
//! route is the contract's and reaches the handler the dev server uses, policies
//! grant exactly what each function calls, and the table matches the store.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use lambda_http::http::Method;
use local_api::{Route, route};
use serde_norway::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn template() -> Value {
    let text = std::fs::read_to_string(root().join("template.yaml")).expect("template.yaml");
    serde_norway::from_str(&text).expect("template parses")
}

/// CloudFormation short forms (`!Ref`, `!GetAtt`) as `"Ref X"` strings.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Tagged(tagged) => format!("{} {}", tagged.tag, plain(&tagged.value)),
        other => format!("{other:?}"),
    }
}

fn functions(template: &Value) -> BTreeMap<String, Value> {
    template["Resources"]
        .as_mapping()
        .expect("resources")
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(name, r)| (name.as_str().expect("name").to_string(), r.clone()))
        .collect()
}

fn binary(function: &Value) -> String {
    function["Metadata"]["BuildProperties"]["Binary"]
        .as_str()
        .expect("BuildProperties.Binary")
        .to_string()
}

/// `create-domain` -> `CreateDomainFunction`.
fn resource_name(binary: &str) -> String {
    let camel: String = binary
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    format!("{camel}Function")
}

fn workspace_function_crates() -> BTreeSet<String> {
    std::fs::read_dir(root().join("functions"))
        .expect("functions/")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.join("Cargo.toml").exists() && path.join("src/main.rs").exists())
        .map(|path| {
            let manifest = std::fs::read_to_string(path.join("Cargo.toml")).expect("manifest");
            manifest
                .lines()
                .find_map(|l| l.strip_prefix("name = \""))
                .and_then(|l| l.strip_suffix('"'))
                .expect("package name")
                .to_string()
        })
        .collect()
}

#[test]
fn every_function_builds_a_workspace_binary_named_consistently() {
    let template = template();
    let functions = functions(&template);
    let binaries: BTreeSet<String> = functions.values().map(binary).collect();
    assert_eq!(
        binaries,
        workspace_function_crates(),
        "template functions vs functions/*"
    );
    for (name, function) in &functions {
        assert_eq!(
            name,
            &resource_name(&binary(function)),
            "resource name of {}",
            binary(function)
        );
        assert_eq!(
            function["Metadata"]["BuildMethod"], "rust-cargolambda",
            "{name}"
        );
    }
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Architectures"][0], "arm64");
    assert_eq!(globals["Handler"], "bootstrap");
}

#[test]
fn routes_are_exactly_the_contract_and_reach_the_matching_handler() {
    let template = template();
    let mut routes = BTreeMap::new();
    for (name, function) in functions(&template) {
        let Some(events) = function["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for event in events.values().filter(|e| e["Type"] == "HttpApi") {
            let method = event["Properties"]["Method"]
                .as_str()
                .expect("method")
                .to_string();
            let path = event["Properties"]["Path"]
                .as_str()
                .expect("path")
                .to_string();
            assert_eq!(
                plain(&event["Properties"]["ApiId"]),
                "!Ref DomainsApi",
                "{name}"
            );
            routes.insert(format!("{method} {path}"), binary(&function));
        }
    }
    let contract = [
        ("POST /domains", Route::CreateDomain, "create-domain"),
        ("GET /domains", Route::ListDomains, "list-domains"),
        ("GET /domains/{domain}", Route::GetDomain, "get-domain"),
        (
            "GET /domains/{domain}/dns-records",
            Route::GetDnsRecords,
            "get-dns-records",
        ),
        (
            "POST /domains/{domain}/verify",
            Route::VerifyDomain,
            "verify-domain",
        ),
        (
            "PATCH /domains/{domain}",
            Route::UpdateDomain,
            "update-domain",
        ),
        (
            "DELETE /domains/{domain}",
            Route::DeleteDomain,
            "delete-domain",
        ),
        (
            "POST /domain-claims",
            Route::CreateDomainClaim,
            "create-domain-claim",
        ),
        (
            "GET /domain-claims",
            Route::ListDomainClaims,
            "list-domain-claims",
        ),
        (
            "GET /domain-claims/{domain}",
            Route::GetDomainClaim,
            "get-domain-claim",
        ),
        (
            "POST /domain-claims/{domain}/verify",
            Route::VerifyDomainClaim,
            "verify-domain-claim",
        ),
        (
            "DELETE /domain-claims/{domain}",
            Route::DeleteDomainClaim,
            "delete-domain-claim",
        ),
    ];
    let expected: BTreeMap<String, String> = contract
        .iter()
        .map(|(key, _, bin)| (key.to_string(), bin.to_string()))
        .collect();
    assert_eq!(routes, expected);
    for (key, dev_route, _) in contract {
        assert_eq!(dev_route.key(), key);
        let (method, path) = key.split_once(' ').expect("route key");
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let concrete = path.replace("{domain}", "example.com");
        assert_eq!(
            route(&method, &concrete).expect("dev server route").0,
            dev_route,
            "{key}"
        );
    }
}

#[test]
fn the_api_uses_the_key_authorizer_with_throttling_and_cors() {
    let template = template();
    let api = &template["Resources"]["DomainsApi"]["Properties"];
    assert_eq!(api["Auth"]["DefaultAuthorizer"], "ApiKeyAuthorizer");
    let authorizer = &api["Auth"]["Authorizers"]["ApiKeyAuthorizer"];
    assert_eq!(
        plain(&authorizer["FunctionArn"]),
        "!Ref AuthorizerFunction.Alias",
        "the authorizer runs the alias that deployments shift"
    );
    assert_eq!(authorizer["AuthorizerPayloadFormatVersion"], "2.0");
    assert_eq!(authorizer["EnableSimpleResponses"], true);
    assert_eq!(authorizer["EnableFunctionDefaultPermissions"], true);
    assert_eq!(authorizer["Identity"]["Headers"][0], "Authorization");
    assert!(
        authorizer["Identity"]["ReauthorizeEvery"]
            .as_u64()
            .is_some_and(|s| s > 0)
    );
    assert_eq!(
        plain(&api["DefaultRouteSettings"]["ThrottlingRateLimit"]),
        "!Ref ThrottlingRateLimit"
    );
    assert_eq!(
        plain(&api["DefaultRouteSettings"]["ThrottlingBurstLimit"]),
        "!Ref ThrottlingBurstLimit"
    );
    assert!(!api["CorsConfiguration"]["AllowOrigins"].is_null());
}

/// Which actions each function needs is checked against what the code does in
/// shared/tests/iam_policies.rs; here, their shape: no wildcards, table actions on
/// the table, SES actions on identities, EventBridge actions on the stack's bus.
#[test]
fn policies_are_scoped_to_the_table_and_identities() {
    let template = template();
    for function in functions(&template).values() {
        let bin = binary(function);
        for policy in function["Properties"]["Policies"]
            .as_sequence()
            .expect("inline policies")
        {
            for statement in policy["Statement"].as_sequence().expect("statements") {
                assert_eq!(statement["Effect"], "Allow");
                let resource = plain(&statement["Resource"]);
                for action in statement["Action"].as_sequence().expect("actions") {
                    let action = action.as_str().expect("action").to_string();
                    assert!(!action.contains('*'), "{bin}: wildcard action {action}");
                    if action.starts_with("dynamodb:") {
                        assert!(
                            resource.contains("DomainsTable"),
                            "{bin}: {action} on {resource}"
                        );
                    } else if action.starts_with("events:") {
                        // The domain events bus, or the scheduler's own (its name
                        // is the stack's, whether or not the fan-out made it).
                        let bus = if bin == "reverify-pending" {
                            "!Sub arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${AWS::StackName}-reverify-tasks"
                        } else {
                            "!GetAtt DomainEventsBus.Arn"
                        };
                        assert_eq!(resource, bus, "{bin}: {action}");
                    } else {
                        assert!(
                            resource.contains(":identity/*"),
                            "{bin}: {action} on {resource}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn the_table_matches_the_store() {
    let template = template();
    let table = &template["Resources"]["DomainsTable"]["Properties"];
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    let keys: Vec<(&str, &str)> = table["KeySchema"]
        .as_sequence()
        .expect("key schema")
        .iter()
        .map(|k| {
            (
                k["AttributeName"].as_str().expect("name"),
                k["KeyType"].as_str().expect("type"),
            )
        })
        .collect();
    assert_eq!(keys, [("pk", "HASH"), ("sk", "RANGE")]);
    let gsi = &table["GlobalSecondaryIndexes"][0];
    assert_eq!(gsi["IndexName"], shared::store::DUE_INDEX);
    let gsi_keys: Vec<&str> = gsi["KeySchema"]
        .as_sequence()
        .expect("gsi keys")
        .iter()
        .map(|k| k["AttributeName"].as_str().expect("name"))
        .collect();
    assert_eq!(gsi_keys, ["gsi_due_pk", "gsi_due_sk"]);
    assert_eq!(gsi["Projection"]["ProjectionType"], "KEYS_ONLY");
}

#[test]
fn the_scheduled_function_runs_on_a_schedule_with_deliberate_retries() {
    let template = template();
    let function = &template["Resources"]["ReverifyPendingFunction"]["Properties"];
    let schedule = &function["Events"]["Schedule"];
    assert_eq!(schedule["Type"], "ScheduleV2");
    assert!(
        schedule["Properties"]["ScheduleExpression"]
            .as_str()
            .is_some_and(|e| e.starts_with("rate("))
    );
    assert_eq!(function["EventInvokeConfig"]["MaximumRetryAttempts"], 0);
    assert_eq!(
        function["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Type"],
        "SQS"
    );
    let outputs = template["Outputs"].as_mapping().expect("outputs");
    assert!(outputs.contains_key("ApiUrl") && outputs.contains_key("TableName"));
    assert_eq!(
        template["Parameters"]["SesReceivingRegion"]["Default"],
        "us-east-2"
    );
}

/// The alarm resources, by logical id.
fn alarms(template: &Value) -> BTreeMap<String, Value> {
    template["Resources"]
        .as_mapping()
        .expect("resources")
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
        .map(|(k, v)| (k.as_str().expect("name").to_string(), v.clone()))
        .collect()
}

#[test]
fn every_function_has_its_log_group_alarms_and_a_deployment_that_rolls_back() {
    let template = template();
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["AutoPublishAlias"], "live");
    assert_eq!(
        plain(&globals["DeploymentPreference"]["Type"]),
        "!Ref DeploymentType"
    );
    let global_alarms: Vec<String> = globals["DeploymentPreference"]["Alarms"]
        .as_sequence()
        .expect("alarms")
        .iter()
        .map(plain)
        .collect();
    assert_eq!(
        global_alarms,
        ["!Ref ApiServerErrorsAlarm", "!Ref ApiLatencyAlarm"]
    );
    assert_eq!(globals["LoggingConfig"]["LogFormat"], "JSON");
    let alarms = alarms(&template);
    for (name, function) in functions(&template) {
        let stem = name.trim_end_matches("Function");
        let properties = &function["Properties"];
        let group = format!("{stem}LogGroup");
        assert_eq!(
            plain(&properties["LoggingConfig"]["LogGroup"]),
            format!("!Ref {group}"),
            "{name}"
        );
        let log_group = &template["Resources"][group.as_str()];
        assert_eq!(log_group["Type"], "AWS::Logs::LogGroup", "{name}");
        assert_eq!(
            plain(&log_group["Properties"]["RetentionInDays"]),
            "!Ref LogRetentionDays"
        );
        for kind in ["Errors", "Throttles"] {
            let alarm = &alarms[&format!("{stem}{kind}Alarm")];
            let properties = &alarm["Properties"];
            assert_eq!(properties["MetricName"], kind, "{name}");
            assert_eq!(
                plain(&properties["Dimensions"][0]["Value"]),
                format!("!Ref {name}")
            );
        }
        let own: Vec<String> = properties["DeploymentPreference"]["Alarms"]
            .as_sequence()
            .expect("own alarms")
            .iter()
            .map(plain)
            .collect();
        assert_eq!(own, [format!("!Ref {stem}ErrorsAlarm")], "{name}");
    }
    assert_eq!(
        template["Parameters"]["LogRetentionDays"]["Default"], 30,
        "30 days unless set"
    );
}

#[test]
fn every_alarm_notifies_the_topic_and_the_named_ones_exist() {
    let template = template();
    let alarms = alarms(&template);
    for name in [
        "ApiServerErrorsAlarm",
        "ApiLatencyAlarm",
        "ReverifyDurationAlarm",
        "ReverifyFailuresQueueDepthAlarm",
        "ScheduleDeadLetterQueueDepthAlarm",
        "DynamoDbThrottlesAlarm",
        "DynamoDbSystemErrorsAlarm",
        "AuthorizerErrorsAlarm",
        "ReverifyErrorsAlarm",
        "ReverifyBacklogAlarm",
    ] {
        assert!(alarms.contains_key(name), "{name} is missing");
    }
    for (name, alarm) in &alarms {
        let actions: Vec<String> = alarm["Properties"]["AlarmActions"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{name} has no actions"))
            .iter()
            .map(plain)
            .collect();
        assert_eq!(actions, ["!Ref AlarmTopic"], "{name}");
        assert!(
            alarm["Properties"]["AlarmDescription"]
                .as_str()
                .is_some_and(|d| d.contains("docs/operations.md")),
            "{name}: the description points on-call to the runbook"
        );
    }
    let docs =
        std::fs::read_to_string(root().join("docs/operations.md")).expect("docs/operations.md");
    for name in alarms.keys() {
        let documented = name.ends_with("ThrottlesAlarm") && name != "DynamoDbThrottlesAlarm"
            || name.ends_with("ErrorsAlarm")
                && !name.starts_with("Api")
                && !name.starts_with("DynamoDb")
            || docs.contains(name.as_str());
        assert!(documented, "{name} is not in docs/operations.md");
    }
    let subscription = &template["Resources"]["AlarmEmailSubscription"];
    assert_eq!(subscription["Condition"], "HasAlarmEmail");
    assert_eq!(
        plain(&subscription["Properties"]["Endpoint"]),
        "!Ref AlarmEmail"
    );
}

#[test]
fn the_api_logs_every_request_as_json_with_the_handlers_request_id() {
    let template = template();
    let settings = &template["Resources"]["DomainsApi"]["Properties"]["AccessLogSettings"];
    assert_eq!(
        plain(&settings["DestinationArn"]),
        "!GetAtt ApiAccessLogGroup.Arn"
    );
    // JSON is YAML: one parser reads both.
    let format: Value =
        serde_norway::from_str(settings["Format"].as_str().expect("format")).expect("JSON format");
    for (field, variable) in [
        ("requestId", "$context.requestId"),
        ("routeKey", "$context.routeKey"),
        ("status", "$context.status"),
        ("responseLatency", "$context.responseLatency"),
        ("authorizerError", "$context.authorizer.error"),
        ("integrationError", "$context.integrationErrorMessage"),
    ] {
        assert_eq!(format[field], variable, "{field}");
    }
    assert_eq!(
        plain(&template["Resources"]["ApiAccessLogGroup"]["Properties"]["RetentionInDays"]),
        "!Ref LogRetentionDays"
    );
}

#[test]
fn deadlines_fit_inside_each_other() {
    let template = template();
    let authorizer = &template["Resources"]["AuthorizerFunction"]["Properties"];
    assert!(
        authorizer["Timeout"].as_u64().is_some_and(|t| t <= 5),
        "the authorizer must answer well inside API Gateway's 10 s"
    );
    let schedule = &template["Resources"]["ReverifyPendingFunction"]["Properties"]["Events"]["Schedule"]
        ["Properties"];
    assert_eq!(
        schedule["OmitName"], true,
        "a fixed name allows one stack per account"
    );
    assert!(schedule.get("Name").is_none());
    assert_eq!(schedule["RetryPolicy"]["MaximumEventAgeInSeconds"], 300);
    assert_eq!(
        plain(&schedule["DeadLetterConfig"]["Arn"]),
        "!GetAtt ScheduleDeadLetterQueue.Arn"
    );
}

#[test]
fn the_table_cannot_be_deleted_or_replaced_by_a_deploy() {
    let template = template();
    let table = &template["Resources"]["DomainsTable"];
    assert_eq!(table["DeletionPolicy"], "Retain");
    assert_eq!(table["UpdateReplacePolicy"], "Retain");
    assert_eq!(table["Properties"]["DeletionProtectionEnabled"], true);
    assert!(
        template["Parameters"]["CorsAllowOrigins"]
            .get("Default")
            .is_none(),
        "no origin is allowed unless an environment says so"
    );
}

/// samconfig.toml's `key = value` lines, by section (`dev.deploy.parameters`).
fn samconfig() -> BTreeMap<String, BTreeMap<String, String>> {
    let text = std::fs::read_to_string(root().join("samconfig.toml")).expect("samconfig.toml");
    let mut sections: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = section.to_string();
            sections.entry(current.clone()).or_default();
        } else if let Some((key, value)) = line.split_once(" = ")
            && !line.starts_with('#')
        {
            sections
                .entry(current.clone())
                .or_default()
                .insert(key.to_string(), value.to_string());
        }
    }
    sections
}

#[test]
fn dev_and_prod_are_separate_stacks_and_only_dev_syncs() {
    let config = samconfig();
    let dev = &config["dev.global.parameters"]["stack_name"];
    let prod = &config["prod.global.parameters"]["stack_name"];
    assert_ne!(dev, prod);
    let syncs: Vec<&String> = config
        .keys()
        .filter(|k| k.ends_with(".sync.parameters"))
        .collect();
    assert_eq!(syncs, ["dev.sync.parameters"], "sync only for dev");
    for env in ["dev", "prod"] {
        let overrides = &config[&format!("{env}.deploy.parameters")]["parameter_overrides"];
        assert!(
            overrides.contains("CorsAllowOrigins=")
                && !overrides.contains("CorsAllowOrigins=\\\"*\\\""),
            "{env}: {overrides}"
        );
        assert!(overrides.contains("DeploymentType="), "{env}");
        assert!(
            config[&format!("{env}.deploy.parameters")].contains_key("tags"),
            "{env}"
        );
    }
    assert!(
        config["prod.deploy.parameters"]["parameter_overrides"]
            .contains("DeploymentType=\\\"Canary")
    );
}

#[test]
fn the_stack_policy_denies_replacing_or_deleting_the_table() {
    let text =
        std::fs::read_to_string(root().join("stack-policy.json")).expect("stack-policy.json");
    // JSON is YAML: one parser reads both.
    let policy: Value = serde_norway::from_str(&text).expect("JSON");
    let statements = policy["Statement"].as_sequence().expect("statements");
    let deny = statements
        .iter()
        .find(|s| s["Effect"] == "Deny")
        .expect("a deny statement");
    assert_eq!(deny["Resource"], "LogicalResourceId/DomainsTable");
    let actions: Vec<&str> = deny["Action"]
        .as_sequence()
        .expect("actions")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(actions, ["Update:Replace", "Update:Delete"]);
    assert!(template()["Resources"]["DomainsTable"].is_mapping());
}

#[test]
fn metrics_have_a_namespace_per_stack_and_a_dashboard() {
    let template = template();
    let namespace =
        plain(&template["Globals"]["Function"]["Environment"]["Variables"]["METRICS_NAMESPACE"]);
    assert_eq!(namespace, "!Sub DomainsApi/${AWS::StackName}");
    for alarm in ["ReverifyErrorsAlarm", "ReverifyBacklogAlarm"] {
        assert_eq!(
            plain(&template["Resources"][alarm]["Properties"]["Namespace"]),
            namespace,
            "{alarm} watches the functions' own metrics"
        );
    }
    let dashboard = &template["Resources"]["OperationsDashboard"];
    assert_eq!(dashboard["Type"], "AWS::CloudWatch::Dashboard");
    let Value::Tagged(body) = &dashboard["Properties"]["DashboardBody"] else {
        panic!("the body is a !Sub");
    };
    let text = body.value[0].as_str().expect("the body text");
    // What !Sub fills in, filled with stand-ins: the rest must be JSON.
    let filled = text
        .replace("${AWS::Region}", "us-east-2")
        .replace("${DomainsApi}", "api")
        .replace("${Namespace}", "DomainsApi/stack");
    let parsed: Value = serde_norway::from_str(&filled).expect("the dashboard is JSON");
    let widgets = parsed["widgets"].as_sequence().expect("widgets");
    let text = format!("{widgets:?}");
    for metric in [
        "Verifications",
        "DnsCheckMillis",
        "LeftForLater",
        "SesCalls",
        "5xx",
    ] {
        assert!(text.contains(metric), "the dashboard shows {metric}");
    }
}

#[test]
fn memory_sizes_are_the_measured_choices() {
    let template = template();
    let benchmarks = std::fs::read_to_string(root().join("BENCHMARKS.md")).expect("BENCHMARKS.md");
    let global = template["Globals"]["Function"]["MemorySize"]
        .as_u64()
        .expect("a global size");
    // The scheduler's is a parameter (its CPU share decides how much a run
    // checks); its default is the measured choice.
    let scheduler_size =
        plain(&template["Resources"]["ReverifyPendingFunction"]["Properties"]["MemorySize"]);
    assert_eq!(scheduler_size, "!Ref ReverifyMemorySize");
    let scheduler = template["Parameters"]["ReverifyMemorySize"]["Default"]
        .as_u64()
        .expect("the scheduler's size");
    for (what, size) in [("API functions", global), ("reverify-pending", scheduler)] {
        assert!(
            benchmarks.contains(&format!("**{size} MB**")),
            "{what}: {size} MB is not the size BENCHMARKS.md chose"
        );
    }
    for (name, function) in functions(&template) {
        if name != "ReverifyPendingFunction" {
            assert!(
                function["Properties"].get("MemorySize").is_none(),
                "{name} keeps the measured global size"
            );
        }
    }
}

#[test]
fn domain_events_flow_from_the_stream_to_the_bus_and_with_a_url_to_a_webhook() {
    let template = template();
    let resources = &template["Resources"];
    assert_eq!(
        resources["DomainsTable"]["Properties"]["StreamSpecification"]["StreamViewType"],
        "NEW_AND_OLD_IMAGES"
    );
    let publisher = &resources["PublishEventsFunction"]["Properties"];
    let stream = &publisher["Events"]["Stream"];
    assert_eq!(stream["Type"], "DynamoDB");
    assert_eq!(
        plain(&stream["Properties"]["Stream"]),
        "!GetAtt DomainsTable.StreamArn"
    );
    assert_eq!(
        stream["Properties"]["FunctionResponseTypes"][0],
        "ReportBatchItemFailures"
    );
    assert_eq!(
        plain(&stream["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]),
        "!GetAtt PublishEventsFailuresQueue.Arn"
    );
    assert_eq!(
        plain(&publisher["Environment"]["Variables"]["EVENT_BUS_NAME"]),
        "!Ref DomainEventsBus"
    );
    assert_eq!(
        resources["DomainEventsBus"]["Type"],
        "AWS::Events::EventBus"
    );
    // The webhook exists only with a URL, and gets every event of the bus.
    assert_eq!(template["Parameters"]["WebhookUrl"]["Default"], "");
    assert_eq!(template["Parameters"]["WebhookSecret"]["NoEcho"], true);
    for name in [
        "WebhookConnection",
        "WebhookDestination",
        "WebhookRole",
        "WebhookDeadLetterQueue",
        "WebhookDeadLetterQueuePolicy",
        "WebhookRule",
    ] {
        assert_eq!(resources[name]["Condition"], "HasWebhook", "{name}");
    }
    let rule = &resources["WebhookRule"]["Properties"];
    assert_eq!(plain(&rule["EventBusName"]), "!Ref DomainEventsBus");
    assert_eq!(rule["EventPattern"]["source"][0], "domains-api");
    let target = &rule["Targets"][0];
    assert_eq!(plain(&target["Arn"]), "!GetAtt WebhookDestination.Arn");
    assert_eq!(
        plain(&target["DeadLetterConfig"]["Arn"]),
        "!GetAtt WebhookDeadLetterQueue.Arn"
    );
    assert_eq!(
        plain(&resources["WebhookDestination"]["Properties"]["InvocationEndpoint"]),
        "!Ref WebhookUrl"
    );
}

/// The fan-out of the scheduled sweep: a bus and a rule only when asked for, the
/// rule matching exactly the tasks the code puts (and invoking the published
/// alias, as the schedule does), the policy on that bus, and the settings the
/// function reads at start-up.
#[test]
fn the_sweep_fans_out_through_the_schedulers_own_bus_when_asked() {
    let template = template();
    let resources = &template["Resources"];
    let condition = plain(&template["Conditions"]["FanOutReverify"]);
    assert!(
        condition.starts_with("!Not")
            && condition.contains("!Equals")
            && condition.contains("\"ReverifyWorkers\"")
            && condition.contains("String(\"1\")"),
        "fan-out only with more than one worker: {condition}"
    );
    let workers = &template["Parameters"]["ReverifyWorkers"];
    assert_eq!(workers["Default"].as_u64(), Some(1));
    assert_eq!(
        workers["MaxValue"].as_u64(),
        Some(u64::from(shared::store::DUE_PARTITIONS)),
        "at most one worker a due partition"
    );
    for name in [
        "ReverifyTasksBus",
        "ReverifyTasksRule",
        "ReverifyTasksPermission",
    ] {
        assert_eq!(resources[name]["Condition"], "FanOutReverify", "{name}");
    }
    assert_eq!(
        plain(&resources["ReverifyTasksBus"]["Properties"]["Name"]),
        "!Sub ${AWS::StackName}-reverify-tasks",
        "the bus the policy names"
    );
    let rule = &resources["ReverifyTasksRule"]["Properties"];
    assert_eq!(
        rule["EventPattern"]["source"][0],
        shared::fanout::TASK_SOURCE
    );
    assert_eq!(
        rule["EventPattern"]["detail-type"][0],
        shared::fanout::TASK_DETAIL_TYPE
    );
    assert_eq!(
        plain(&rule["Targets"][0]["Arn"]),
        "!Ref ReverifyPendingFunction.Alias"
    );
    assert_eq!(
        plain(&resources["ReverifyTasksPermission"]["Properties"]["FunctionName"]),
        "!Ref ReverifyPendingFunction.Alias"
    );
    let function = &resources["ReverifyPendingFunction"]["Properties"];
    let variables = &function["Environment"]["Variables"];
    assert_eq!(
        plain(&variables["REVERIFY_WORKERS"]),
        "!Ref ReverifyWorkers"
    );
    assert!(plain(&variables["REVERIFY_TASKS_BUS"]).contains("ReverifyTasksBus"));
    // A run ends before the next tick: runs never overlap.
    let timeout = function["Timeout"].as_u64().expect("timeout");
    assert!(timeout < 300, "{timeout}");
    assert_eq!(
        resources["ReverifyDurationAlarm"]["Properties"]["Threshold"].as_u64(),
        Some((timeout - 20) * 1000),
        "the duration alarm sits just under the timeout"
    );
}
