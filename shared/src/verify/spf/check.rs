//! Judging the SPF record at a name: what is published there, read as receivers
//! read it, and evaluated for SES's mail with the include and redirect targets
//! fetched from DNS (all of one level at once, each once per check).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::future::{BoxFuture, join_all};
use hickory_resolver::proto::rr::RecordType;
use mail_auth::spf::{Mechanism, Spf as SpfRecord};

use super::evaluate::Published;
use super::{
    MAX_DNS_LOOKUPS, Outcome, SES_DOMAIN, SpfSource, TxtValue, classify, evaluate, literal_domain,
    parse, suggested_record,
};
use crate::domain_name::DomainName;
use crate::model::{DnsRecord, RecordStatus};
use crate::verify::judge::{Judgement, appended_judgement};
use crate::verify::lookups::Lookups;
use crate::verify::resolver::Answer;

/// SPF records of include and redirect targets fetched in one check, at most.
const MAX_SPF_FETCHES: usize = 20;

/// Include and redirect targets' records from DNS, fetched once per check.
struct DnsSpfSource<'a, 'b> {
    lookups: &'a Lookups<'b>,
    fetched: Mutex<HashMap<String, Published>>,
    budget: AtomicUsize,
}

impl DnsSpfSource<'_, '_> {
    async fn fetch(&self, domain: &str) -> Published {
        if let Some(known) = self
            .fetched
            .lock()
            .ok()
            .and_then(|f| f.get(domain).cloned())
        {
            return known;
        }
        let spent = self
            .budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(1)
            });
        let published = if spent.is_err() {
            Published::Failed(format!("more than {MAX_SPF_FETCHES} SPF records to follow"))
        } else {
            let (answer, _) = self.lookups.values(domain, RecordType::TXT).await;
            match answer {
                Answer::Failed(e) => Published::Failed(e),
                answer => {
                    let records: Vec<String> = answer
                        .found()
                        .iter()
                        .filter_map(|t| match classify(t) {
                            TxtValue::Spf(record) => Some(record),
                            _ => None,
                        })
                        .collect();
                    match records.as_slice() {
                        [] => Published::Nothing,
                        [one] => Published::Record(one.clone()),
                        several => Published::Several(several.len()),
                    }
                }
            }
        };
        if let Ok(mut fetched) = self.fetched.lock() {
            fetched.insert(domain.to_string(), published.clone());
        }
        published
    }

    /// Fetches every include and redirect target reachable from `record`, a level
    /// at a time, so evaluation in term order waits on no lookup in turn.
    async fn prefetch(&self, record: &SpfRecord) {
        let mut level = targets(record);
        for _ in 0..MAX_DNS_LOOKUPS {
            if level.is_empty() {
                break;
            }
            let found = join_all(level.iter().map(|target| self.fetch(target))).await;
            level = found
                .into_iter()
                .filter_map(|published| match published {
                    Published::Record(text) => parse(&text).ok(),
                    _ => None,
                })
                .flat_map(|nested| targets(&nested))
                .filter(|target| {
                    self.fetched
                        .lock()
                        .map(|f| !f.contains_key(target))
                        .unwrap_or(false)
                })
                .collect();
            level.sort();
            level.dedup();
        }
    }
}

impl SpfSource for DnsSpfSource<'_, '_> {
    fn published(&self, domain: &str) -> BoxFuture<'_, Published> {
        let domain = domain.to_string();
        Box::pin(async move { self.fetch(&domain).await })
    }
}

/// Include and redirect targets of a record, SES's own left out (its record is
/// known to pass its addresses and needs no lookup).
fn targets(record: &SpfRecord) -> Vec<String> {
    record
        .directives
        .iter()
        .filter_map(|d| match &d.mechanism {
            Mechanism::Include { macro_string } => literal_domain(macro_string),
            _ => None,
        })
        .chain(record.redirect.as_ref().and_then(literal_domain))
        .filter(|target| target != SES_DOMAIN)
        .collect()
}

/// Looks up and judges the SPF record of `record.fqdn`.
pub(in crate::verify) async fn judge_spf_record(
    lookups: &Lookups<'_>,
    domain: &DomainName,
    record: &DnsRecord,
) -> Result<Judgement, String> {
    let (answer, _) = lookups.values(&record.fqdn, RecordType::TXT).await;
    let texts = match answer {
        Answer::Found(texts) => texts,
        Answer::Empty => vec![],
        Answer::Failed(e) => return Err(e),
    };
    let source = DnsSpfSource {
        lookups,
        fetched: Mutex::new(HashMap::new()),
        budget: AtomicUsize::new(MAX_SPF_FETCHES),
    };
    let classified: Vec<TxtValue> = texts.iter().map(|t| classify(t)).collect();
    let records: Vec<String> = classified
        .iter()
        .filter_map(|c| match c {
            TxtValue::Spf(record) => Some(record.clone()),
            _ => None,
        })
        .collect();
    match records.as_slice() {
        [] => {
            let lookalike = classified.into_iter().find_map(|c| match c {
                TxtValue::Lookalike { problem, repaired } => Some((problem, repaired)),
                _ => None,
            });
            if let Some((problem, repaired)) = lookalike {
                let mut judged = Judgement::failed(problem, texts);
                if let Some(repaired) = repaired {
                    judged.suggested_value = passing_suggestion(&[repaired], &source).await;
                }
                return Ok(judged);
            }
            Ok(
                match lookups
                    .appended(domain, &record.fqdn, RecordType::TXT)
                    .await
                {
                    Some(found) => appended_judgement(found),
                    None => Judgement::missing("SPF (v=spf1) TXT"),
                },
            )
        }
        [one] => judge_one(one, &source).await,
        several => {
            let mut judged = Judgement::failed(
                format!(
                    "{} SPF records were found; a name may have only one (RFC 7208 4.5: receivers treat more as a permanent error), so replace them with the single merged record in suggested_value.",
                    several.len()
                ),
                records.clone(),
            );
            judged.suggested_value = passing_suggestion(&records, &source).await;
            Ok(judged)
        }
    }
}

async fn judge_one(text: &str, source: &DnsSpfSource<'_, '_>) -> Result<Judgement, String> {
    let observed = vec![text.to_string()];
    let parsed = match parse(text) {
        Ok(parsed) => parsed,
        Err(error) => {
            return Ok(Judgement::failed(
                format!(
                    "The SPF record has a syntax error at {}: receivers treat it as a permanent error (RFC 7208 4.6), so SPF fails for all mail; fix or remove that term.",
                    error.term
                ),
                observed,
            ));
        }
    };
    source.prefetch(&parsed).await;
    let evaluation = evaluate(&parsed, source).await;
    match evaluation.outcome {
        Outcome::Pass => Ok(match evaluation.total_lookups {
            Some(count) if count > MAX_DNS_LOOKUPS => Judgement::new(
                RecordStatus::Verified,
                Some(format!(
                    "Warning: SES's mail passes, but this SPF record needs {count} DNS lookups in all, more than the 10 receivers allow (RFC 7208 4.6.4), so mail from your other senders fails SPF; remove includes you no longer use."
                )),
                observed,
            ),
            _ => Judgement::verified(observed),
        }),
        Outcome::Fails { reason, fixable } => {
            let mut judged = Judgement::failed(reason, observed);
            if fixable {
                judged.suggested_value = passing_suggestion(&[text.to_string()], source).await;
            }
            Ok(judged)
        }
        Outcome::Unknown(error) => Err(error),
    }
}

/// A suggested record that passes the same rules (SES's include before the
/// `all`, or first if the terms before it use up the lookups), or none. When a
/// target cannot be looked up now, the first form is given unjudged.
async fn passing_suggestion(records: &[String], source: &DnsSpfSource<'_, '_>) -> Option<String> {
    for ses_first in [false, true] {
        let suggestion = suggested_record(records, ses_first);
        let Ok(parsed) = parse(&suggestion) else {
            return None;
        };
        source.prefetch(&parsed).await;
        match evaluate(&parsed, source).await.outcome {
            Outcome::Pass | Outcome::Unknown(_) => return Some(suggestion),
            Outcome::Fails { .. } => {}
        }
    }
    None
}
