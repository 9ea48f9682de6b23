//! `check_host()` (RFC 7208 4) for a message sent through SES: terms in order,
//! includes and `redirect=` followed, the first matching term decides, at most 10
//! DNS-querying terms. SES's addresses are matched only by `amazonses.com`'s own
//! record (reached directly or through other records): they are in no customer's
//! `a`, `mx`, `ip4` or `exists` terms, so those never match here.

use futures::future::BoxFuture;
use mail_auth::spf::{Mechanism, Qualifier, Spf as SpfRecord};

use super::{MAX_DNS_LOOKUPS, SES_DOMAIN, literal_domain, parse, queries_dns};

/// What a domain publishes as SPF, for an `include:` or `redirect=` target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// Exactly one SPF record.
    Record(String),
    /// No SPF record (lookalikes count as none, as receivers discard them).
    Nothing,
    /// More than one SPF record (RFC 7208 4.5: a permanent error).
    Several(usize),
    /// The lookup could not be completed.
    Failed(String),
}

/// Where the records of include and redirect targets come from (DNS, or a map in
/// tests).
pub trait SpfSource: Sync {
    /// The SPF record published at `domain`.
    fn published(&self, domain: &str) -> BoxFuture<'_, Published>;
}

/// The result for mail sent through SES.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// SES's mail passes.
    Pass,
    /// Receivers do not pass SES's mail: one sentence saying why; `fixable` when
    /// a suggested record can repair it.
    Fails {
        /// What is wrong and what to do.
        reason: String,
        /// Whether rewriting this record (the suggestion) fixes it.
        fixable: bool,
    },
    /// A lookup failed: nothing can be concluded.
    Unknown(String),
}

/// An evaluation: its outcome, and the DNS-querying terms of the whole record
/// (counted for all mail, when SES passes) for a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// The result for SES's mail.
    pub outcome: Outcome,
    /// DNS-querying terms the whole record costs (includes followed), when SES passes.
    pub total_lookups: Option<usize>,
}

/// How a record ended for SES's mail, short of a pass.
enum Ending {
    /// An `all` term matched first (index among the directives).
    All(usize),
    /// A term matched SES with a qualifier other than `+`.
    Qualified { term: String, qualifier: Qualifier },
    /// Nothing matched (no `all`, no `redirect=`): neutral.
    Default,
    /// `redirect=` to a domain whose record does not pass SES.
    Redirect(String),
}

/// Why evaluation stopped with an error.
enum Stop {
    Perm { reason: String, fixable: bool },
    Temp(String),
}

struct Run<'s, S: SpfSource> {
    source: &'s S,
    lookups: usize,
}

/// Evaluates `record`, the one SPF record at the domain, for SES's mail.
pub async fn evaluate(record: &SpfRecord, source: &impl SpfSource) -> Evaluation {
    let mut run = Run { source, lookups: 0 };
    let outcome = match run.record(record).await {
        Ok(Ok(())) => Outcome::Pass,
        Ok(Err(ending)) => Outcome::Fails {
            reason: ending_reason(record, ending),
            fixable: true,
        },
        Err(Stop::Perm { reason, fixable }) => Outcome::Fails { reason, fixable },
        Err(Stop::Temp(error)) => Outcome::Unknown(error),
    };
    let total_lookups = match outcome {
        Outcome::Pass => Some(total_lookups(record, source, 0).await),
        _ => None,
    };
    Evaluation {
        outcome,
        total_lookups,
    }
}

fn symbol(qualifier: &Qualifier) -> &'static str {
    match qualifier {
        Qualifier::Pass => "+",
        Qualifier::Fail => "-",
        Qualifier::SoftFail => "~",
        Qualifier::Neutral => "?",
    }
}

fn result_name(qualifier: &Qualifier) -> &'static str {
    match qualifier {
        Qualifier::Pass => "pass",
        Qualifier::Fail => "fail",
        Qualifier::SoftFail => "softfail",
        Qualifier::Neutral => "neutral",
    }
}

fn ending_reason(record: &SpfRecord, ending: Ending) -> String {
    match ending {
        Ending::All(index) => {
            let all = format!("{}all", symbol(&record.directives[index].qualifier));
            let ses_later = record.directives[index + 1..].iter().any(|d| match &d.mechanism {
                Mechanism::Include { macro_string } => {
                    literal_domain(macro_string).as_deref() == Some(SES_DOMAIN)
                }
                _ => false,
            });
            if ses_later {
                format!(
                    "include:amazonses.com comes after {all}, and terms after all are never evaluated (RFC 7208 5.1), so SES's mail does not pass; move it before {all} (see suggested_value)."
                )
            } else if record.directives[index].qualifier == Qualifier::Pass {
                "The SPF record's +all authorizes every server on the internet before it reaches include:amazonses.com; put include:amazonses.com before it and end with ~all or -all (see suggested_value).".into()
            } else {
                format!(
                    "The SPF record does not authorize SES: add include:amazonses.com before {all} (see suggested_value) rather than publishing a second record."
                )
            }
        }
        Ending::Qualified { term, qualifier } => format!(
            "{term} has the {} qualifier, so SES's mail gets {} instead of pass; remove the qualifier (see suggested_value).",
            symbol(&qualifier),
            result_name(&qualifier)
        ),
        Ending::Default => "The SPF record does not authorize SES: add include:amazonses.com to it (see suggested_value) rather than publishing a second record.".into(),
        Ending::Redirect(target) => format!(
            "The SPF record's redirect={target} leads to a record that does not authorize SES; add include:amazonses.com to this record (see suggested_value)."
        ),
    }
}

impl<S: SpfSource> Run<'_, S> {
    /// `Ok(Ok(()))`: SES's mail passes this record; `Ok(Err(_))`: it ends otherwise.
    fn record<'a>(
        &'a mut self,
        record: &'a SpfRecord,
    ) -> BoxFuture<'a, Result<Result<(), Ending>, Stop>> {
        Box::pin(async move {
            for (index, directive) in record.directives.iter().enumerate() {
                if queries_dns(&directive.mechanism) {
                    self.count()?;
                }
                let matched = match &directive.mechanism {
                    Mechanism::All => return Ok(Err(Ending::All(index))),
                    Mechanism::Include { macro_string } => match literal_domain(macro_string) {
                        Some(target) => self.include(&target).await?.then_some(target),
                        None => None,
                    },
                    _ => None,
                };
                if let Some(target) = matched {
                    return Ok(match directive.qualifier {
                        Qualifier::Pass => Ok(()),
                        ref other => Err(Ending::Qualified {
                            term: format!("{}include:{target}", symbol(other)),
                            qualifier: other.clone(),
                        }),
                    });
                }
            }
            let Some(target) = record.redirect.as_ref().and_then(literal_domain) else {
                return Ok(Err(Ending::Default));
            };
            self.count()?;
            Ok(if self.include(&target).await? {
                Ok(())
            } else {
                Err(Ending::Redirect(target))
            })
        })
    }

    fn count(&mut self) -> Result<(), Stop> {
        self.lookups += 1;
        if self.lookups > MAX_DNS_LOOKUPS {
            return Err(Stop::Perm {
                reason: format!(
                    "The SPF record needs more than {MAX_DNS_LOOKUPS} DNS-querying terms (include, a, mx, ptr, exists, redirect, counted through includes) before it reaches include:amazonses.com, a permanent error for receivers (RFC 7208 4.6.4), so SPF fails; remove terms you no longer use or put include:amazonses.com first (see suggested_value)."
                ),
                fixable: true,
            });
        }
        Ok(())
    }

    /// Whether `target`'s record passes SES's mail (an include matches).
    async fn include(&mut self, target: &str) -> Result<bool, Stop> {
        if target == SES_DOMAIN {
            return Ok(true);
        }
        let text = match self.source.published(target).await {
            Published::Record(text) => text,
            Published::Nothing => {
                return Err(Stop::Perm {
                    reason: format!(
                        "The SPF record refers to {target}, which publishes no SPF record: a permanent error for receivers (RFC 7208 5.2), so SPF fails; fix or remove that term."
                    ),
                    fixable: false,
                });
            }
            Published::Several(count) => {
                return Err(Stop::Perm {
                    reason: format!(
                        "The SPF record refers to {target}, which publishes {count} SPF records: a permanent error for receivers (RFC 7208 4.5), so SPF fails."
                    ),
                    fixable: false,
                });
            }
            Published::Failed(error) => return Err(Stop::Temp(error)),
        };
        let nested = parse(&text).map_err(|error| Stop::Perm {
            reason: format!(
                "The SPF record of {target}, which this record refers to, has a syntax error at {}: a permanent error for receivers (RFC 7208 4.6), so SPF fails.",
                error.term
            ),
            fixable: false,
        })?;
        Ok(self.record(&nested).await?.is_ok())
    }
}

/// DNS-querying terms of the whole record for any mail (includes followed, each
/// target once per path; a target that cannot be read counts as its own term only).
fn total_lookups<'a, S: SpfSource>(
    record: &'a SpfRecord,
    source: &'a S,
    depth: usize,
) -> BoxFuture<'a, usize> {
    Box::pin(async move {
        let mut total = 0;
        let has_all = record
            .directives
            .iter()
            .any(|d| matches!(d.mechanism, Mechanism::All));
        let mut targets = Vec::new();
        for directive in record.directives.iter() {
            if queries_dns(&directive.mechanism) {
                total += 1;
            }
            if let Mechanism::Include { macro_string } = &directive.mechanism {
                targets.extend(literal_domain(macro_string));
            }
        }
        if !has_all && let Some(target) = record.redirect.as_ref().and_then(literal_domain) {
            total += 1;
            targets.push(target);
        }
        if depth >= MAX_DNS_LOOKUPS {
            return total;
        }
        for target in targets.into_iter().filter(|t| t != SES_DOMAIN) {
            if let Published::Record(text) = source.published(&target).await
                && let Ok(nested) = parse(&text)
            {
                total += total_lookups(&nested, source, depth + 1).await;
            }
        }
        total
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct Map(HashMap<&'static str, Published>);

    impl SpfSource for Map {
        fn published(&self, domain: &str) -> BoxFuture<'_, Published> {
            let found = self.0.get(domain).cloned().unwrap_or(Published::Nothing);
            Box::pin(async move { found })
        }
    }

    fn map(entries: &[(&'static str, &str)]) -> Map {
        Map(entries
            .iter()
            .map(|(k, v)| (*k, Published::Record(v.to_string())))
            .collect())
    }

    async fn outcome(record: &str, source: &Map) -> Outcome {
        evaluate(&parse(record).expect("parses"), source)
            .await
            .outcome
    }

    /// What a record's evaluation must come to.
    enum Expected {
        Pass,
        /// A failure whose reason mentions these words.
        FailsWith(&'static str),
        /// Unknown, for this reason.
        Unknown(&'static str),
    }

    /// Evaluates each record against `source`, as `expected`.
    async fn assert_outcomes(source: &Map, cases: &[(&str, Expected)]) {
        for (record, expected) in cases {
            let outcome = outcome(record, source).await;
            match expected {
                Expected::Pass => assert_eq!(outcome, Outcome::Pass, "{record}"),
                Expected::FailsWith(words) => match outcome {
                    Outcome::Fails { reason, .. } => {
                        assert!(reason.contains(words), "{record}: {reason}")
                    }
                    other => {
                        panic!("{record}: expected a failure mentioning {words:?}, got {other:?}")
                    }
                },
                Expected::Unknown(why) => {
                    assert_eq!(outcome, Outcome::Unknown(why.to_string()), "{record}")
                }
            }
        }
    }

    #[tokio::test]
    async fn ses_must_come_before_any_all() {
        use Expected::*;
        assert_outcomes(
            &map(&[]),
            &[
                ("v=spf1 include:amazonses.com ~all", Pass),
                ("v=spf1 +include:amazonses.com. -all", Pass),
                (
                    "v=spf1 ~all include:amazonses.com",
                    FailsWith("comes after ~all"),
                ),
                ("v=spf1 ?include:amazonses.com ~all", FailsWith("neutral")),
                ("v=spf1 +all include:amazonses.com", FailsWith("after +all")),
                ("v=spf1 +all", FailsWith("every server")),
                ("v=spf1 mx", FailsWith("does not authorize SES")),
            ],
        )
        .await;
    }

    #[tokio::test]
    async fn includes_and_redirects_are_followed() {
        use Expected::*;
        let source = map(&[
            (
                "_spf.example.com",
                "v=spf1 ip4:192.0.2.1 include:amazonses.com -all",
            ),
            ("other.example.net", "v=spf1 ip4:192.0.2.1 -all"),
            ("deep.example.com", "v=spf1 include:_spf.example.com -all"),
        ]);
        assert_outcomes(
            &source,
            &[
                ("v=spf1 include:_spf.example.com -all", Pass),
                ("v=spf1 include:deep.example.com -all", Pass),
                ("v=spf1 redirect=amazonses.com", Pass),
                ("v=spf1 a redirect=_spf.example.com", Pass),
                ("v=spf1 redirect=other.example.net", FailsWith("redirect=")),
                (
                    "v=spf1 ~include:_spf.example.com -all",
                    FailsWith("softfail"),
                ),
                // An include that does not pass does not match: evaluation goes on.
                (
                    "v=spf1 include:other.example.net include:amazonses.com -all",
                    Pass,
                ),
                // A redirect is ignored when the record has an all (RFC 7208 6.1).
                ("v=spf1 -all redirect=amazonses.com", FailsWith("-all")),
            ],
        )
        .await;
    }

    #[tokio::test]
    async fn the_eleventh_lookup_is_a_permanent_error() {
        use Expected::*;
        let ten_before = "v=spf1 a mx a:h1.example.com a:h2.example.com a:h3.example.com a:h4.example.com a:h5.example.com a:h6.example.com a:h7.example.com a:h8.example.com include:amazonses.com ~all";
        let nine_before = ten_before.replace(" a:h8.example.com", "");
        assert_outcomes(
            &map(&[]),
            &[
                (ten_before, FailsWith("more than 10")),
                (nine_before.as_str(), Pass),
            ],
        )
        .await;
        // Lookups inside includes count too.
        let source = map(&[(
            "big.example.com",
            "v=spf1 a mx a:1.x a:2.x a:3.x a:4.x a:5.x a:6.x a:7.x a:8.x a:9.x -all",
        )]);
        assert_outcomes(
            &source,
            &[(
                "v=spf1 include:big.example.com include:amazonses.com ~all",
                FailsWith("more than 10"),
            )],
        )
        .await;
        // A loop ends at the limit, not in a stack overflow.
        let looping = map(&[("loop.example.com", "v=spf1 include:loop.example.com -all")]);
        assert_outcomes(
            &looping,
            &[(
                "v=spf1 include:loop.example.com ~all",
                FailsWith("more than 10"),
            )],
        )
        .await;
    }

    #[tokio::test]
    async fn broken_targets_are_permanent_errors_and_failed_lookups_unknown() {
        use Expected::*;
        let mut source = map(&[("bad.example.com", "v=spf1 ip4:192.0.2 -all")]);
        source.0.insert("two.example.com", Published::Several(2));
        source
            .0
            .insert("down.example.com", Published::Failed("timed out".into()));
        assert_outcomes(
            &source,
            &[
                (
                    "v=spf1 include:bad.example.com include:amazonses.com ~all",
                    FailsWith("syntax error at ip4:192.0.2"),
                ),
                (
                    "v=spf1 include:none.example.com include:amazonses.com ~all",
                    FailsWith("publishes no SPF record"),
                ),
                (
                    "v=spf1 include:two.example.com include:amazonses.com ~all",
                    FailsWith("2 SPF records"),
                ),
                (
                    "v=spf1 include:down.example.com include:amazonses.com ~all",
                    Unknown("timed out"),
                ),
                // Terms after SES's include are never evaluated for SES's mail.
                (
                    "v=spf1 include:amazonses.com include:none.example.com ~all",
                    Pass,
                ),
            ],
        )
        .await;
    }

    #[tokio::test]
    async fn the_whole_record_is_counted_for_a_warning() {
        let source = map(&[("_spf.example.com", "v=spf1 a mx -all")]);
        let evaluation = evaluate(
            &parse("v=spf1 include:amazonses.com include:_spf.example.com mx ~all")
                .expect("parses"),
            &source,
        )
        .await;
        assert_eq!(evaluation.outcome, Outcome::Pass);
        assert_eq!(evaluation.total_lookups, Some(5));
    }
}
