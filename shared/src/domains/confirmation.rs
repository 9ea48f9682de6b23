//! SES's own confirmation of a domain: after a DNS check, when the lifecycle needs
//! it (`lifecycle::needs_ses`), `GetEmailIdentity` is read into `domain.ses`. The
//! manual verify and the scheduled job both come here. SES throttles identity
//! APIs per account, so every call takes its turn from one budget the whole
//! deployment shares (`SES_MAX_RPS` a second, `DomainStore::take_ses_call`);
//! the scheduled job also spaces its own calls evenly (its run's rate limiter).

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::app::App;
use crate::domains::lifecycle::needs_ses;
use crate::domains::provisioning;
use crate::identity::Identity;
use crate::model::{Domain, SesStatus, SesView, Timestamp};
use crate::store::SesSlot;

/// How long a scheduled check waits for its turn to ask SES; past that it asks at
/// its next check (a run must end well before its deadline).
pub const MAX_RATE_WAIT: Duration = Duration::from_secs(10);
/// How long a caller's verify waits for its turn to ask SES; past that the
/// domain keeps what SES said last, and the scheduled job asks.
pub const REQUEST_RATE_WAIT: Duration = Duration::from_secs(2);

/// At most `per_second` calls in any second, evenly spaced: a call waits for its
/// slot. Shared by all the checks of a scheduled run.
pub struct RateLimiter {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// A limiter allowing `per_second` calls a second (at least 1).
    pub fn per_second(per_second: u32) -> Self {
        Self {
            interval: Duration::from_secs(1) / per_second.max(1),
            next: Mutex::new(None),
        }
    }

    /// Waits for the next free slot, if it comes within `max_wait`; else takes
    /// none and answers false (the caller asks at its next check).
    pub async fn acquire_within(&self, max_wait: Duration) -> bool {
        let slot = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let slot = next.map_or(now, |next| next.max(now));
            if slot > now + max_wait {
                return false;
            }
            *next = Some(slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
        true
    }
}

/// Reads SES's view into `domain.ses` when the lifecycle needs it after the DNS
/// check now in `domain.records`. A failed read (throttled, unavailable) leaves
/// `domain.ses` as it was: the domain waits for the next check, never fails for it.
pub async fn read_ses_view(
    app: &App,
    domain: &mut Domain,
    now: Timestamp,
    recheck_confirmed: bool,
    limiter: Option<&RateLimiter>,
) {
    if !needs_ses(domain, recheck_confirmed) {
        return;
    }
    // A caller's verify also takes its organization's share: one SES read in
    // `ORGANIZATION_SES_INTERVAL`, so one tenant's verifies cannot spend the
    // budget every tenant's confirmations need.
    let share = limiter.is_none().then_some(domain.organization_id.as_str());
    if !take_turn(app, limiter, share).await {
        return;
    }
    let identity = match app.identities.get(&domain.name).await {
        Ok(identity) => identity,
        Err(error) => {
            tracing::warn!(domain = %domain.name, %error, "could not read SES's view of the identity");
            return;
        }
    };
    // The local stand-in has no SES: it stands confirmed, as SES would be, once
    // the records resolve correctly, which `needs_ses` has just seen through the
    // project's DNS checker (every record verified).
    let stand_in = identity.dkim_status.is_none();
    let wanted = domain
        .mail_from_subdomain
        .as_ref()
        .map(|label| label.domain_under(&domain.name));
    let mut mail_from_status = identity.mail_from_status;
    if identity.mail_from_domain != wanted {
        // SES does not hold the MAIL FROM domain this domain asks for (a change
        // that reached the table but not SES, or the reverse): SES is told again,
        // and its confirmation starts over.
        tell_ses_mail_from(app, domain, &identity, wanted.as_deref(), limiter).await;
        mail_from_status = None;
    }
    let mail_from_status = match wanted {
        None => None,
        Some(_) if stand_in => Some(SesStatus::Success),
        Some(_) => Some(mail_from_status.unwrap_or(SesStatus::Pending)),
    };
    domain.ses = Some(SesView {
        dkim_status: identity.dkim_status.unwrap_or(SesStatus::Success),
        mail_from_status,
        checked_at: now,
    });
}

/// Sets (or clears) the identity's MAIL FROM domain (`provisioning::set_mail_from`:
/// only this organization's), within the run's rate. A failure waits for the next
/// check.
async fn tell_ses_mail_from(
    app: &App,
    domain: &Domain,
    identity: &Identity,
    mail_from_domain: Option<&str>,
    limiter: Option<&RateLimiter>,
) {
    if !take_turn(app, limiter, None).await {
        return;
    }
    if let Err(error) = provisioning::set_mail_from(app, domain, identity, mail_from_domain).await {
        tracing::warn!(domain = %domain.name, %error, "could not tell SES the MAIL FROM domain");
    }
}

/// A caller's verifies read SES for one organization at most once in this long
/// (the scheduled job has its own pace).
pub const ORGANIZATION_SES_INTERVAL: Duration = Duration::from_secs(10);

/// Waits for a turn to call SES: the run's own spacing (`limiter`, for a
/// scheduled check) or the organization's share (`share`, for a caller's
/// verify), then the deployment's shared budget. False when none comes in time
/// (`MAX_RATE_WAIT` for a scheduled check, `REQUEST_RATE_WAIT` for a caller's),
/// the share is spent, or the budget cannot be read: SES is then asked at the
/// next check.
async fn take_turn(app: &App, limiter: Option<&RateLimiter>, share: Option<&str>) -> bool {
    let max_wait = match limiter {
        Some(limiter) => {
            if !limiter.acquire_within(MAX_RATE_WAIT).await {
                return false;
            }
            MAX_RATE_WAIT
        }
        None => REQUEST_RATE_WAIT,
    };
    let Some(per_second) = app.ses_max_rps else {
        return true;
    };
    if let Some(organization_id) = share {
        let turn = crate::store::Turn::SesRead { organization_id };
        match app
            .store
            .take_turn(turn, Timestamp::now(), ORGANIZATION_SES_INTERVAL)
            .await
        {
            Ok(()) => {}
            Err(crate::store::StoreError::TooSoon(_)) => return false,
            Err(error) => {
                tracing::warn!(%error, "could not take the organization's SES turn; SES is asked at the next check");
                return false;
            }
        }
    }
    let started = Instant::now();
    loop {
        match app.store.take_ses_call(per_second).await {
            Ok(SesSlot::Taken) => return true,
            Ok(SesSlot::Full(next_second)) => {
                if started.elapsed() + next_second > max_wait {
                    return false;
                }
                tokio::time::sleep(next_second).await;
            }
            Err(error) => {
                tracing::warn!(%error, "could not take a turn from the SES budget; SES is asked at the next check");
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn calls_are_spaced_to_the_rate() {
        let limiter = RateLimiter::per_second(5);
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..11 {
            assert!(limiter.acquire_within(MAX_RATE_WAIT).await);
            times.push(start.elapsed());
        }
        assert_eq!(times[0], Duration::ZERO);
        assert_eq!(times[5], Duration::from_secs(1));
        assert_eq!(times[10], Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_too_far_away_is_not_taken() {
        let limiter = RateLimiter::per_second(1);
        assert!(limiter.acquire_within(Duration::from_secs(2)).await);
        assert!(limiter.acquire_within(Duration::from_secs(2)).await);
        // The next slot is 1 s away from now (2 s after the start): not within 0.5 s.
        assert!(!limiter.acquire_within(Duration::from_millis(500)).await);
        assert!(limiter.acquire_within(Duration::from_secs(2)).await);
    }
}
