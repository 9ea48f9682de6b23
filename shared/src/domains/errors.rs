//! How the ports' errors reach the caller: each mapped to the contract's
//! `ApiError` once, here.

use super::lifecycle;
use super::provisioning::SetupError;
use super::transfer::TransferError;
use crate::error::ApiError;
use crate::identity::IdentityError;
use crate::model::Timestamp;
use crate::store::StoreError;

pub(crate) fn store_error(error: StoreError) -> ApiError {
    match error {
        StoreError::NameTaken => ApiError::DomainAlreadyExists,
        StoreError::ParentHeld(parent) => ApiError::parent_domain_held(parent.as_str()),
        StoreError::LimitReached => ApiError::DomainLimitReached,
        StoreError::TooLarge(detail) => ApiError::Internal(detail),
        StoreError::DomainGone => ApiError::DomainNotFound,
        StoreError::ClaimGone => ApiError::ClaimNotFound,
        StoreError::Conflict => ApiError::Unavailable("the domain kept changing".into()),
        StoreError::TooSoon(at) => ApiError::TooManyChecks {
            retry_after: lifecycle::manual_check_retry_after(
                at,
                Timestamp::now(),
                lifecycle::MANUAL_CHECK_INTERVAL,
            ),
            last_checked_at: None,
        },
        StoreError::KeyNotFound => ApiError::Internal("API key vanished".into()),
        StoreError::Throttled(detail) => ApiError::Throttled(detail),
        StoreError::Unavailable(detail) => ApiError::Unavailable(detail),
        StoreError::Internal(detail) => ApiError::Internal(detail),
    }
}

pub(crate) fn transfer_error(error: TransferError) -> ApiError {
    match error {
        TransferError::Held | TransferError::Mine => ApiError::DomainAlreadyExists,
        TransferError::Busy => ApiError::DomainBusy,
        TransferError::ClaimGone => ApiError::ClaimNotFound,
        TransferError::LimitReached => ApiError::DomainLimitReached,
        TransferError::ClaimEnded => ApiError::Internal("the claim ended unhandled".into()),
        TransferError::Store(error) => store_error(error),
    }
}

pub(crate) fn identity_error(error: IdentityError) -> ApiError {
    match error {
        IdentityError::Throttled(detail) => ApiError::Throttled(detail),
        IdentityError::Unavailable(detail) => ApiError::Unavailable(detail),
        IdentityError::LimitExceeded(detail) => ApiError::IdentityLimit(detail),
        other => ApiError::Internal(other.to_string()),
    }
}

pub(crate) fn setup_error(error: SetupError) -> ApiError {
    match error {
        SetupError::NotOurs => ApiError::DomainAlreadyExists,
        SetupError::Identity(error) => identity_error(error),
    }
}

/// Logs the internal detail of a server fault where it happens; the caller only
/// ever sees the generic message.
pub(crate) fn logged(error: ApiError) -> ApiError {
    if error.status().is_server_error() {
        tracing::error!(code = error.code(), detail = %error, "dependency failure");
    }
    error
}
