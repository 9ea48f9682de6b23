//! Paging of `GET /domains`: `?limit=` and the opaque `?cursor=`.

use lambda_http::{Request, RequestExt};

use crate::domain_name::DomainName;
use crate::error::ApiError;

/// Most domains in one list response (and the default): about 2 MB of JSON,
/// well inside Lambda's 6 MB response limit.
pub const MAX_PAGE: usize = 1000;

/// `?limit=` and `?cursor=` of `GET /domains`.
pub(super) fn page_request(request: &Request) -> Result<(usize, Option<String>), ApiError> {
    let query = request.query_string_parameters_ref();
    let limit = match query.and_then(|q| q.first("limit")) {
        None => MAX_PAGE,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or(ApiError::InvalidLimit)?,
    };
    let after = match query.and_then(|q| q.first("cursor")) {
        // An empty cursor (a URL template with nothing filled in) is no cursor.
        None | Some("") => None,
        Some(cursor) => Some(decode_cursor(cursor).ok_or(ApiError::InvalidCursor)?),
    };
    Ok((limit, after))
}

/// Cursors are opaque to callers: the last name of a page, base64url-encoded
/// without padding. Any base64url text of at most `MAX_CURSOR` characters is a
/// cursor (the page starts after the text it decodes to, in name order), so that
/// what the OpenAPI file says is a cursor is one.
pub const MAX_CURSOR: usize = 340;

fn cursor_engine() -> base64::engine::GeneralPurpose {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_padding_mode(DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    )
}

pub(super) fn encode_cursor(name: &DomainName) -> String {
    use base64::Engine;
    cursor_engine().encode(name.as_str())
}

fn decode_cursor(cursor: &str) -> Option<String> {
    use base64::Engine;
    if cursor.len() > MAX_CURSOR {
        return None;
    }
    let bytes = cursor_engine().decode(cursor).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}
