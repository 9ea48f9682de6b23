//! How an AWS SDK call failed, read the same way for every service the API
//! calls; each adapter (the DynamoDB store, the SES identities) maps it to its
//! own errors. Here, beside the store, because only `store/` and the adapters
//! use it.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;

/// An SDK call's failure, as every service's adapter sees it.
pub(crate) enum SdkFailure<'a, E> {
    /// No answer: timed out, not sent, or unreadable. The call may or may not
    /// have taken effect.
    NoAnswer,
    /// The service answered with an error: its modeled error and HTTP status.
    Service(&'a E, u16),
    /// Anything else (a request that could not be built).
    Other,
}

/// `error`'s kind, and its detail for a message: `"{operation}: {error, with
/// its sources}"`.
pub(crate) fn sdk_failure<'a, E: std::error::Error + 'static>(
    operation: &str,
    error: &'a SdkError<E, HttpResponse>,
) -> (String, SdkFailure<'a, E>) {
    let detail = format!("{operation}: {}", DisplayErrorContext(error));
    let failure = match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            SdkFailure::NoAnswer
        }
        SdkError::ServiceError(service) => {
            SdkFailure::Service(service.err(), service.raw().status().as_u16())
        }
        _ => SdkFailure::Other,
    };
    (detail, failure)
}
