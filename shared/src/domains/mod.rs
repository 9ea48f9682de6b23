//! The use cases: what the API and the scheduler do with a domain, each with its
//! rules, over the ports an `App` holds (the store, SES identities, DNS, metrics).
//! Handlers turn HTTP into a call here and its result into HTTP; the scheduled
//! job calls the same code. Every change of a domain's state goes through
//! `lifecycle`; who may touch an SES identity is `provisioning`'s rule.
//!
//! | use case | module |
//! |---|---|
//! | create a domain (and resume a half-done create) | `create` |
//! | read, list, DNS records | `read` |
//! | verify by hand | `verify` (SES's view: `confirmation`) |
//! | change the MAIL FROM domain | `mail_from` |
//! | delete | `delete` |
//! | claims: open, list, read, verify, delete | `claims` |
//! | a name passing to another organization | `transfer` |
//! | scheduled re-verification | `scheduler` |

pub mod claims;
pub mod confirmation;
pub mod create;
pub mod delete;
mod errors;
pub mod lifecycle;
pub mod mail_from;
pub mod provisioning;
pub mod read;
pub mod scheduler;
pub mod setup;
pub mod transfer;
pub mod verify;

pub(crate) use errors::{identity_error, logged, setup_error, store_error, transfer_error};

/// What one attempt of a read-modify-write did.
pub(crate) enum Attempt<S, T> {
    /// Finished, with this.
    Done(T),
    /// Lost a race (or must read again first): the next attempt, if any, starts
    /// from this state.
    Again(S),
}

/// Writes that lose a race (to the scheduled job, another request) are tried
/// this many times, each on a fresh read.
pub(crate) const WRITE_ATTEMPTS: usize = 3;

/// The one read-modify-write loop: runs `attempt` (numbered from 1) on the state
/// the previous one left until it is done, at most `attempts` times, then fails
/// with `exhausted`. (The state is passed along rather than borrowed by the
/// closure, so the future stays `Send` for a spawned task.)
pub(crate) async fn retrying<S, T, E, Fut>(
    attempts: usize,
    exhausted: impl FnOnce() -> E,
    mut state: S,
    mut attempt: impl FnMut(S, usize) -> Fut,
) -> Result<T, E>
where
    Fut: std::future::Future<Output = Result<Attempt<S, T>, E>>,
{
    for number in 1..=attempts {
        match attempt(state, number).await? {
            Attempt::Done(value) => return Ok(value),
            Attempt::Again(next) => state = next,
        }
    }
    Err(exhausted())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_retry_stops_at_the_first_done_or_after_its_attempts() {
        let done: Result<(usize, usize), &str> = retrying(
            3,
            || "exhausted",
            0,
            |tries, n| async move {
                Ok(if n == 2 {
                    Attempt::Done((n, tries + 1))
                } else {
                    Attempt::Again(tries + 1)
                })
            },
        )
        .await;
        assert_eq!(done, Ok((2, 2)));
        let mut tries = Vec::new();
        let exhausted: Result<(), &str> = retrying(
            3,
            || "exhausted",
            (),
            |(), n| {
                tries.push(n);
                async { Ok(Attempt::Again(())) }
            },
        )
        .await;
        assert_eq!((exhausted, tries), (Err("exhausted"), vec![1, 2, 3]));
        let failed: Result<(), &str> =
            retrying(3, || "exhausted", (), |(), _| async { Err("failed") }).await;
        assert_eq!(failed, Err("failed"));
    }
}
