//! Which handler a request goes to: the routes are `shared::endpoints`' (the
//! table every other place is checked against), and a route's handler is found by
//! its name in the one `served!` list below. A route not in the table is never
//! served; a handler of the table missing from the list fails this module's tests
//! and `shared/tests/it/endpoint_table.rs`.

use lambda_http::http::Method;
use shared::endpoints::{self, Function};
use shared::{ApiError, App, handlers};

/// One list: each variant of [`Route`], the name of its handler in
/// `shared::handlers` (the table's `handler`), and its dispatch.
macro_rules! served {
    ($($variant:ident => $handler:ident,)*) => {
        /// Which handler a request goes to.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Route {
            $(
                #[doc = concat!("`handlers::", stringify!($handler), "`.")]
                $variant,
            )*
        }

        impl Route {
            /// Every route the dev server can dispatch.
            pub const ALL: &[Route] = &[$(Self::$variant,)*];

            /// The name of its handler, as the endpoint table names it.
            pub fn handler(self) -> &'static str {
                match self {
                    $(Self::$variant => stringify!($handler),)*
                }
            }
        }

        /// Runs the route's handler, as its Lambda does.
        pub(crate) async fn run(
            app: &App,
            route: Route,
            request: lambda_http::Request,
        ) -> lambda_http::Response<lambda_http::Body> {
            let result = match route {
                $(Route::$variant => handlers::$handler(app, request).await,)*
            };
            result.unwrap_or_else(|error| ApiError::Internal(error.to_string()).to_response())
        }
    };
}

served! {
    CreateDomain => create_domain,
    ListDomains => list_domains,
    GetDomain => get_domain,
    GetDnsRecords => get_dns_records,
    VerifyDomain => verify_domain,
    UpdateDomain => update_domain,
    DeleteDomain => delete_domain,
    CreateDomainClaim => create_domain_claim,
    ListDomainClaims => list_domain_claims,
    GetDomainClaim => get_domain_claim,
    VerifyDomainClaim => verify_domain_claim,
    DeleteDomainClaim => delete_domain_claim,
}

impl Route {
    /// The route of the table's function, if the dev server serves it.
    pub fn of(function: &Function) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|route| route.handler() == function.handler)
    }

    /// The API Gateway route key (`METHOD /path`), from the endpoint table.
    pub fn key(self) -> &'static str {
        endpoints::endpoints()
            .find(|(_, function)| function.handler == self.handler())
            .map_or("", |(route, _)| route.key)
    }
}

/// Matches a request to the table's route; the `{domain}` segment comes back
/// percent-decoded. A path of no route is 404, another method at a route's path 405.
pub fn route(method: &Method, path: &str) -> Result<(Route, Option<String>), ApiError> {
    let mut at_path = endpoints::endpoints_at(path).peekable();
    let Some((first, _)) = at_path.peek() else {
        return Err(ApiError::RouteNotFound);
    };
    // Every route at one path has the same parameters (the path's).
    let domain = first
        .match_path(path)
        .and_then(|parameters| parameters.into_iter().find(|(name, _)| *name == "domain"))
        .map(|(_, segment)| {
            percent_encoding::percent_decode_str(segment)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| ApiError::DomainNotFound)
        })
        .transpose()?;
    let (_, function) = at_path
        .find(|(route, _)| route.method == method.as_str())
        .ok_or(ApiError::MethodNotAllowed)?;
    let route = Route::of(function).ok_or_else(|| {
        ApiError::Internal(format!(
            "the dev server has no handler {} for {}",
            function.handler,
            function.route().map_or("", |route| route.key)
        ))
    })?;
    Ok((route, domain))
}

/// The `Allow` header of a 405 for `path` (RFC 9110 15.5.6): the methods of the
/// table's routes at that path.
pub fn allow_header(path: &str) -> Option<String> {
    const ORDER: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
    let mut methods: Vec<&str> = endpoints::endpoints_at(path)
        .map(|(route, _)| route.method)
        .collect();
    methods.sort_by_key(|method| ORDER.iter().position(|m| m == method));
    (!methods.is_empty()).then(|| methods.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_of_the_table_is_served_by_its_handler() {
        let mut served = Vec::new();
        for (endpoint, function) in endpoints::endpoints() {
            let method = Method::from_bytes(endpoint.method.as_bytes()).expect("method");
            let path = endpoint.path.replace("{domain}", "example.com");
            let (route, domain) = route(&method, &path).expect(endpoint.key);
            assert_eq!(route.handler(), function.handler, "{}", endpoint.key);
            assert_eq!(route.key(), endpoint.key);
            assert_eq!(
                domain.as_deref(),
                endpoint.path.contains("{domain}").then_some("example.com"),
                "{}",
                endpoint.key
            );
            served.push(route);
        }
        served.sort_by_key(|route| route.handler());
        let mut all = Route::ALL.to_vec();
        all.sort_by_key(|route| route.handler());
        assert_eq!(served, all, "every Route is a route of the table");
    }

    #[test]
    fn routes_match_the_contract() {
        let cases = [
            (Method::POST, "/domains", Route::CreateDomain, None),
            (Method::GET, "/domains", Route::ListDomains, None),
            (
                Method::GET,
                "/domains/b%C3%BCcher.de",
                Route::GetDomain,
                Some("bücher.de"),
            ),
            (
                Method::POST,
                "/domain-claims/example.com/verify",
                Route::VerifyDomainClaim,
                Some("example.com"),
            ),
        ];
        for (method, path, expected, domain) in cases {
            let (route, decoded) = route(&method, path).expect(path);
            assert_eq!(route, expected, "{path}");
            assert_eq!(decoded.as_deref(), domain, "{path}");
        }
        for path in [
            "/nope",
            "/domains/a/b/c",
            "/domains/",
            "/domain-claims//verify",
        ] {
            assert!(
                matches!(route(&Method::GET, path), Err(ApiError::RouteNotFound)),
                "{path}"
            );
        }
        assert!(matches!(
            route(&Method::PUT, "/domains"),
            Err(ApiError::MethodNotAllowed)
        ));
        assert!(matches!(
            route(&Method::POST, "/domains/x.com"),
            Err(ApiError::MethodNotAllowed)
        ));
        assert!(matches!(
            route(&Method::GET, "/domains/%FF"),
            Err(ApiError::DomainNotFound)
        ));
    }

    #[test]
    fn allow_lists_the_methods_at_a_path() {
        let cases = [
            ("/domains", Some("GET, POST")),
            ("/domains/x.com", Some("GET, PATCH, DELETE")),
            ("/domains/x.com/dns-records", Some("GET")),
            ("/domains/x.com/verify", Some("POST")),
            ("/domain-claims", Some("GET, POST")),
            ("/domain-claims/x.com", Some("GET, DELETE")),
            ("/domain-claims/x.com/verify", Some("POST")),
            ("/nope", None),
        ];
        for (path, allow) in cases {
            assert_eq!(allow_header(path).as_deref(), allow, "{path}");
        }
    }
}
