//! Every place that lists the service's functions says what `shared::endpoints`
//! says: `functions/`, template.yaml (resources, triggers, routes, policies),
//! openapi.yaml, the dev server's dispatch, docs/api.md and each function's
//! `main.rs`. Files only: no server needed.
//!
//! The policies' actions are the ones `iam_policies.rs` records the code
//! performing (it holds template.yaml to the recording), so the table's actions
//! are checked against the code through the template.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_norway::Value as Yaml;
use shared::endpoints::{self, FUNCTIONS, Function, Trigger};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Yaml {
    serde_norway::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The table's routes as `METHOD /path`.
fn table_routes() -> BTreeSet<String> {
    endpoints::endpoints()
        .map(|(route, _)| route.key.to_string())
        .collect()
}

/// A `!Ref X` / `!GetAtt X` value's target, or a plain string.
fn plain(value: &Yaml) -> String {
    match value {
        Yaml::String(s) => s.clone(),
        Yaml::Tagged(tagged) => plain(&tagged.value),
        other => format!("{other:?}"),
    }
}

fn is_identifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `needle` occurs in `text` as a whole path of identifiers (not as the start of a
/// longer name: `handlers::create_domain` is not in `handlers::create_domain_claim`).
fn mentions(text: &str, needle: &str) -> bool {
    text.match_indices(needle).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + needle.len()..].chars().next();
        !before.is_some_and(is_identifier_char) && !after.is_some_and(is_identifier_char)
    })
}

/// `text` calls `function`: its name, then `(`.
fn calls(text: &str, function: &str) -> bool {
    text.match_indices(function).any(|(at, _)| {
        !text[..at]
            .chars()
            .next_back()
            .is_some_and(is_identifier_char)
            && text[at + function.len()..].starts_with('(')
    })
}

#[test]
fn the_table_names_each_function_route_and_action_once() {
    for function in FUNCTIONS {
        let calls: BTreeSet<&str> = function.aws_calls.iter().copied().collect();
        assert_eq!(
            calls.len(),
            function.aws_calls.len(),
            "{}: an action twice",
            function.crate_name
        );
        if let Some(route) = function.route() {
            assert_eq!(route.key, format!("{} {}", route.method, route.path));
        }
    }
    let crates: BTreeSet<&str> = FUNCTIONS.iter().map(|f| f.crate_name).collect();
    assert_eq!(crates.len(), FUNCTIONS.len(), "a crate twice");
    assert_eq!(
        table_routes().len(),
        endpoints::endpoints().count(),
        "a route twice"
    );
}

#[test]
fn functions_directory_holds_exactly_the_tables_crates() {
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("functions")).expect("functions/") {
        let path = entry.expect("entry").path();
        if !path.is_dir() {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name")
            .to_string();
        let manifest = std::fs::read_to_string(path.join("Cargo.toml"))
            .unwrap_or_else(|e| panic!("functions/{name}/Cargo.toml: {e}"));
        assert!(
            manifest
                .lines()
                .any(|l| l.trim() == format!("name = \"{name}\"")),
            "functions/{name}/Cargo.toml must name its package {name}"
        );
        found.insert(name);
    }
    let table: BTreeSet<String> = FUNCTIONS.iter().map(|f| f.crate_name.to_string()).collect();
    assert_eq!(found, table, "functions/* (left) vs the table (right)");
}

#[test]
fn each_functions_main_calls_its_handler_and_no_other() {
    for function in FUNCTIONS {
        let path = format!("functions/{}/src/main.rs", function.crate_name);
        let main = read(&path);
        let entry = format!("{}::{}", function.module, function.handler);
        assert!(
            mentions(&main, &entry) && calls(&main, function.handler),
            "{path} must call {entry}"
        );
        for other in FUNCTIONS.iter().filter(|f| f != &function) {
            let theirs = format!("{}::{}", other.module, other.handler);
            assert!(
                !mentions(&main, &theirs),
                "{path} calls {theirs}, another function's entry point"
            );
        }
    }
}

/// The template's functions: resource name -> resource.
fn template_functions(template: &Yaml) -> BTreeMap<String, Yaml> {
    template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(name, r)| (name.as_str().expect("name").to_string(), r.clone()))
        .collect()
}

/// Every action of the function's policies.
fn granted(resource: &Yaml) -> BTreeSet<String> {
    resource["Properties"]["Policies"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|p| p["Statement"].as_sequence().cloned().unwrap_or_default())
        .flat_map(|s| match &s["Action"] {
            Yaml::Sequence(actions) => actions.clone(),
            single => vec![single.clone()],
        })
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}

/// The types of the function's events, and its `METHOD /path` HTTP API routes.
fn triggers(resource: &Yaml) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut types = BTreeSet::new();
    let mut routes = BTreeSet::new();
    for event in resource["Properties"]["Events"]
        .as_mapping()
        .into_iter()
        .flat_map(|events| events.values())
    {
        let kind = event["Type"].as_str().expect("event Type").to_string();
        if kind == "HttpApi" {
            assert_eq!(plain(&event["Properties"]["ApiId"]), "DomainsApi");
            routes.insert(format!(
                "{} {}",
                event["Properties"]["Method"].as_str().expect("Method"),
                event["Properties"]["Path"].as_str().expect("Path")
            ));
        }
        types.insert(kind);
    }
    (types, routes)
}

fn check_function_in_template(template: &Yaml, resource: &Yaml, function: &Function) {
    let name = function.resource;
    assert_eq!(
        resource["Metadata"]["BuildProperties"]["Binary"].as_str(),
        Some(function.crate_name),
        "{name}: Metadata.BuildProperties.Binary"
    );
    let (types, routes) = triggers(resource);
    let (expected_types, expected_routes): (&[&str], BTreeSet<String>) = match &function.trigger {
        Trigger::Http(route) => (&["HttpApi"], BTreeSet::from([route.key.to_string()])),
        Trigger::Schedule => (&["ScheduleV2"], BTreeSet::new()),
        Trigger::Stream => (&["DynamoDB"], BTreeSet::new()),
        Trigger::Authorizer => {
            let authorizers =
                template["Resources"]["DomainsApi"]["Properties"]["Auth"]["Authorizers"]
                    .as_mapping()
                    .expect("DomainsApi's authorizers");
            assert!(
                authorizers.values().any(|a| {
                    let arn = plain(&a["FunctionArn"]);
                    arn.split('.').next() == Some(name)
                }),
                "{name} must be the API's authorizer"
            );
            (&[], BTreeSet::new())
        }
    };
    let expected_types: BTreeSet<String> = expected_types.iter().map(|t| t.to_string()).collect();
    assert_eq!(types, expected_types, "{name}: event types");
    assert_eq!(routes, expected_routes, "{name}: routes");
    let table: BTreeSet<String> = function.aws_calls.iter().map(|a| a.to_string()).collect();
    assert_eq!(
        granted(resource),
        table,
        "{name}: template grants (left) vs the table (right)"
    );
}

#[test]
fn template_has_each_function_with_its_trigger_and_exactly_its_actions() {
    let template = yaml("template.yaml");
    let resources = template_functions(&template);
    let names: BTreeSet<&str> = resources.keys().map(String::as_str).collect();
    let table: BTreeSet<&str> = FUNCTIONS.iter().map(|f| f.resource).collect();
    assert_eq!(
        names, table,
        "template functions (left) vs the table (right)"
    );
    for function in FUNCTIONS {
        check_function_in_template(&template, &resources[function.resource], function);
    }
}

#[test]
fn openapi_has_exactly_the_tables_routes() {
    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    let openapi = yaml("openapi.yaml");
    let mut routes = BTreeSet::new();
    for (path, item) in openapi["paths"].as_mapping().expect("paths") {
        let path = path.as_str().expect("path");
        for (method, _) in item.as_mapping().expect("path item") {
            let method = method.as_str().expect("key");
            if METHODS.contains(&method) {
                routes.insert(format!("{} {path}", method.to_ascii_uppercase()));
            }
        }
    }
    assert_eq!(
        routes,
        table_routes(),
        "openapi.yaml (left) vs the table (right)"
    );
}

/// The dev server routes by the table and dispatches by handler name through
/// the one list in its `served!` invocation; each route's handler must be there.
#[test]
fn dev_server_dispatches_every_route_of_the_table() {
    let source = read("local-api/src/routes.rs");
    let list = source
        .split_once("served! {")
        .and_then(|(_, rest)| rest.split_once('}'))
        .map(|(list, _)| list)
        .expect("local-api/src/routes.rs has its `served! { Variant => handler, .. }` list");
    let served: BTreeSet<&str> = list
        .lines()
        .filter_map(|line| line.split_once("=>"))
        .map(|(_, handler)| handler.trim().trim_end_matches(',').trim())
        .collect();
    let table: BTreeSet<&str> = endpoints::endpoints()
        .map(|(_, function)| function.handler)
        .collect();
    assert_eq!(
        served, table,
        "local-api's served! list (left) vs the table's routes (right)"
    );
}

/// `` `METHOD /path `` in the API reference: each route of the table is there,
/// and each one there is a route of the table.
#[test]
fn api_reference_documents_exactly_the_tables_routes() {
    const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
    let doc = read("docs/api.md");
    let mut documented = BTreeSet::new();
    for method in METHODS {
        let opening = format!("`{method} /");
        for (at, _) in doc.match_indices(&opening) {
            let rest = &doc[at + opening.len() - 1..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || "/{}_.-".contains(c)))
                .unwrap_or(rest.len());
            documented.insert((method, &rest[..end]));
        }
    }
    for (route, _) in endpoints::endpoints() {
        assert!(
            documented.contains(&(route.method, route.path)),
            "docs/api.md must mention `{}`",
            route.key
        );
    }
    for (method, path) in documented {
        assert!(
            endpoints::endpoints_at(path).any(|(route, _)| route.method == method),
            "docs/api.md mentions `{method} {path}`, which is no route of the table"
        );
    }
}
