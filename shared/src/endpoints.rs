//! The one list of the service's functions: each Lambda's crate, its SAM resource,
//! the `shared` function its `main` runs, what triggers it (for the API's
//! endpoints, the method and path API Gateway routes) and the AWS actions its code
//! performs (the IAM actions template.yaml grants it).
//!
//! Everything else is held to this list: the dev server serves exactly its routes
//! (local-api's router matches requests against it), and
//! `shared/tests/it/endpoint_table.rs` fails when `functions/`, template.yaml
//! (resources, routes, policies), openapi.yaml, docs/api.md or a function's
//! `main.rs` says otherwise. `shared/tests/it/iam_policies.rs` records the actions
//! the code performs against template.yaml, so the actions here are the recorded
//! ones too. Adding an endpoint starts with a row here.
//!
//! A leaf: plain data and string matching, nothing from the rest of the crate.

/// One Lambda function of the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function {
    /// What invokes it.
    pub trigger: Trigger,
    /// The crate under `functions/` and the binary SAM builds (`create-domain`).
    pub crate_name: &'static str,
    /// The `AWS::Serverless::Function` resource of template.yaml
    /// (`CreateDomainFunction`).
    pub resource: &'static str,
    /// The module of `shared` that holds its entry point (`handlers`).
    pub module: &'static str,
    /// Its entry point in that module, which its `main.rs` calls (`create_domain`);
    /// the dev server dispatches API requests by this name.
    pub handler: &'static str,
    /// The IAM actions its code performs, each once (`dynamodb:GetItem`,
    /// `ses:CreateEmailIdentity`): exactly what its policies in template.yaml grant.
    pub aws_calls: &'static [&'static str],
}

/// What invokes a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A route of the HTTP API, behind the authorizer.
    Http(Route),
    /// API Gateway, for each request: the HTTP API's Lambda authorizer.
    Authorizer,
    /// The EventBridge schedule (and, with a fan-out, its worker tasks).
    Schedule,
    /// The table's DynamoDB stream.
    Stream,
}

/// An API Gateway route: method and path template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// `GET`, `POST`, `PATCH`, `DELETE`.
    pub method: &'static str,
    /// API Gateway style, `{name}` for a parameter: `/domains/{domain}/verify`.
    pub path: &'static str,
    /// `METHOD /path`, API Gateway's route key (the events' `routeKey`).
    pub key: &'static str,
}

impl Route {
    /// The path parameters of `path` when it has this route's shape, as
    /// `(name, raw segment)` (not percent-decoded); a parameter never matches an
    /// empty segment.
    pub fn match_path<'p>(&self, path: &'p str) -> Option<Vec<(&'static str, &'p str)>> {
        let mut template = segments(self.path);
        let mut given = segments(path);
        let mut parameters = Vec::new();
        loop {
            match (template.next(), given.next()) {
                (None, None) => return Some(parameters),
                (Some(expected), Some(segment)) => {
                    match expected.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                        Some(_) if segment.is_empty() => return None,
                        Some(name) => parameters.push((name, segment)),
                        None if expected == segment => {}
                        None => return None,
                    }
                }
                _ => return None,
            }
        }
    }
}

fn segments(path: &str) -> std::str::Split<'_, char> {
    path.trim_start_matches('/').split('/')
}

impl Function {
    /// Its route, for a function of the HTTP API.
    pub fn route(&self) -> Option<&Route> {
        match &self.trigger {
            Trigger::Http(route) => Some(route),
            _ => None,
        }
    }
}

/// The API's endpoints: every function with a route, with it.
pub fn endpoints() -> impl Iterator<Item = (&'static Route, &'static Function)> {
    FUNCTIONS
        .iter()
        .filter_map(|function| function.route().map(|route| (route, function)))
}

/// The endpoints whose path template `path` matches, whatever their method.
pub fn endpoints_at(path: &str) -> impl Iterator<Item = (&'static Route, &'static Function)> {
    endpoints().filter(move |(route, _)| route.match_path(path).is_some())
}

macro_rules! http {
    ($method:literal, $path:literal) => {
        Trigger::Http(Route {
            method: $method,
            path: $path,
            key: concat!($method, " ", $path),
        })
    };
}

// The actions, by what they are for.
const GET: &str = "dynamodb:GetItem";
const QUERY: &str = "dynamodb:Query";
const PUT: &str = "dynamodb:PutItem";
const UPDATE: &str = "dynamodb:UpdateItem";
const DELETE: &str = "dynamodb:DeleteItem";
const CONDITION_CHECK: &str = "dynamodb:ConditionCheckItem";
const SES_CREATE: &str = "ses:CreateEmailIdentity";
const SES_TAG: &str = "ses:TagResource";
const SES_GET: &str = "ses:GetEmailIdentity";
const SES_DELETE: &str = "ses:DeleteEmailIdentity";
const SES_MAIL_FROM: &str = "ses:PutEmailIdentityMailFromAttributes";
const PUT_EVENTS: &str = "events:PutEvents";

/// A row of the table: trigger, crate, SAM resource, entry point, AWS actions.
macro_rules! function {
    ($trigger:expr, $crate_name:literal, $resource:literal, $module:ident :: $handler:ident, [$($call:expr),* $(,)?]) => {
        Function {
            trigger: $trigger,
            crate_name: $crate_name,
            resource: $resource,
            module: stringify!($module),
            handler: stringify!($handler),
            aws_calls: &[$($call),*],
        }
    };
}

/// Every function of the stack: the API's endpoints in the order of the API
/// reference, then the others.
#[rustfmt::skip]
pub const FUNCTIONS: &[Function] = &[
    function!(http!("POST", "/domains"), "create-domain", "CreateDomainFunction", handlers::create_domain,
        [GET, QUERY, PUT, DELETE, UPDATE, CONDITION_CHECK, SES_CREATE, SES_TAG, SES_GET, SES_DELETE, SES_MAIL_FROM]),
    function!(http!("GET", "/domains"), "list-domains", "ListDomainsFunction", handlers::list_domains,
        [GET, QUERY]),
    function!(http!("GET", "/domains/{domain}"), "get-domain", "GetDomainFunction", handlers::get_domain,
        [GET, QUERY]),
    function!(http!("GET", "/domains/{domain}/dns-records"), "get-dns-records", "GetDnsRecordsFunction", handlers::get_dns_records,
        [GET, QUERY, PUT, SES_CREATE, SES_TAG, SES_GET, SES_DELETE]),
    function!(http!("POST", "/domains/{domain}/verify"), "verify-domain", "VerifyDomainFunction", handlers::verify_domain,
        [GET, QUERY, PUT, UPDATE, SES_CREATE, SES_TAG, SES_GET, SES_DELETE, SES_MAIL_FROM]),
    function!(http!("PATCH", "/domains/{domain}"), "update-domain", "UpdateDomainFunction", handlers::update_domain,
        [GET, QUERY, PUT, SES_GET, SES_MAIL_FROM]),
    function!(http!("DELETE", "/domains/{domain}"), "delete-domain", "DeleteDomainFunction", handlers::delete_domain,
        [GET, QUERY, PUT, DELETE, UPDATE, SES_GET, SES_DELETE]),
    function!(http!("POST", "/domain-claims"), "create-domain-claim", "CreateDomainClaimFunction", handlers::create_domain_claim,
        [GET, QUERY, PUT, UPDATE]),
    function!(http!("GET", "/domain-claims"), "list-domain-claims", "ListDomainClaimsFunction", handlers::list_domain_claims,
        [GET, QUERY]),
    function!(http!("GET", "/domain-claims/{domain}"), "get-domain-claim", "GetDomainClaimFunction", handlers::get_domain_claim,
        [GET, QUERY]),
    function!(http!("POST", "/domain-claims/{domain}/verify"), "verify-domain-claim", "VerifyDomainClaimFunction", handlers::verify_domain_claim,
        [GET, QUERY, PUT, DELETE, UPDATE, SES_CREATE, SES_TAG, SES_GET, SES_DELETE]),
    function!(http!("DELETE", "/domain-claims/{domain}"), "delete-domain-claim", "DeleteDomainClaimFunction", handlers::delete_domain_claim,
        [GET, DELETE]),
    function!(Trigger::Authorizer, "authorizer", "AuthorizerFunction", authorizer::authorize,
        [GET]),
    function!(Trigger::Schedule, "reverify-pending", "ReverifyPendingFunction", handlers::reverify_pending,
        [GET, QUERY, PUT, UPDATE, SES_GET, SES_MAIL_FROM, PUT_EVENTS]),
    function!(Trigger::Stream, "publish-events", "PublishEventsFunction", handlers::publish_events,
        [PUT_EVENTS]),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_their_templates_only() {
        let route = |key: &str| {
            endpoints()
                .find(|(route, _)| route.key == key)
                .map(|(route, _)| *route)
                .expect(key)
        };
        let one = route("GET /domains/{domain}");
        assert_eq!(
            one.match_path("/domains/example.com"),
            Some(vec![("domain", "example.com")])
        );
        assert_eq!(one.match_path("/domains/"), None);
        assert_eq!(one.match_path("/domains"), None);
        assert_eq!(one.match_path("/domains/a/b"), None);
        assert_eq!(route("GET /domains").match_path("/domains"), Some(vec![]));
        assert_eq!(route("GET /domains").match_path("/domain-claims"), None);
        let methods: Vec<&str> = endpoints_at("/domains/x")
            .map(|(route, _)| route.method)
            .collect();
        assert_eq!(methods, ["GET", "PATCH", "DELETE"]);
    }

    #[test]
    fn names_and_routes_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for function in FUNCTIONS {
            assert!(seen.insert(function.crate_name), "{}", function.crate_name);
            assert!(seen.insert(function.resource), "{}", function.resource);
            assert!(seen.insert(function.handler), "{}", function.handler);
            if let Some(route) = function.route() {
                assert!(seen.insert(route.key), "{}", route.key);
            }
        }
    }
}
