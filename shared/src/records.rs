//! The DNS records a domain must publish: six derived from its name, its DKIM
//! tokens and the deployment's SES receiving region, and two more at a custom
//! MAIL FROM domain when one is set.

use crate::domain_name::DomainName;
use crate::mail_from::{MailFromLabel, feedback_mx_host};
use crate::model::{DnsRecord, RecordPurpose, RecordStatus, RecordType};

/// The MX record's preference.
pub const MX_PRIORITY: u16 = 10;
/// The SPF record to publish.
pub const SPF_VALUE: &str = "v=spf1 include:amazonses.com ~all";
/// The SPF mechanism that authorizes SES.
pub const SPF_INCLUDE: &str = "include:amazonses.com";
/// The DMARC record to publish.
pub const DMARC_VALUE: &str = "v=DMARC1; p=reject;";

/// The inbound SES endpoint the MX record points to.
pub fn inbound_mx_host(receiving_region: &str) -> String {
    format!("inbound-smtp.{receiving_region}.amazonaws.com")
}

/// The records for `name`, all pending. DKIM records appear once SES has issued
/// tokens (always, on real SES; never on moto, which returns none).
pub fn expected_records(
    name: &DomainName,
    dkim_tokens: &[String],
    receiving_region: &str,
) -> Vec<DnsRecord> {
    let domain = name.as_str();
    let relative = name.relative_name();
    let dmarc_name = match name.subdomain_prefix() {
        Some(prefix) => format!("_dmarc.{prefix}"),
        None => "_dmarc".to_string(),
    };
    let mut records = vec![
        pending(
            RecordPurpose::Mx,
            RecordType::Mx,
            relative.to_string(),
            domain.to_string(),
            inbound_mx_host(receiving_region),
            Some(MX_PRIORITY),
        ),
        pending(
            RecordPurpose::Spf,
            RecordType::Txt,
            relative.to_string(),
            domain.to_string(),
            SPF_VALUE.to_string(),
            None,
        ),
        pending(
            RecordPurpose::Dmarc,
            RecordType::Txt,
            dmarc_name,
            format!("_dmarc.{domain}"),
            DMARC_VALUE.to_string(),
            None,
        ),
    ];
    records.extend(dkim_tokens.iter().map(|token| {
        let fqdn = format!("{token}._domainkey.{domain}");
        pending(
            RecordPurpose::Dkim,
            RecordType::Cname,
            fqdn.clone(),
            fqdn,
            format!("{token}.dkim.amazonses.com"),
            None,
        )
    }));
    records
}

/// The two records at the custom MAIL FROM domain `<label>.<name>`: an MX to SES's
/// feedback endpoint in the sending region, and SPF authorizing SES.
pub fn mail_from_records(
    name: &DomainName,
    label: &MailFromLabel,
    sending_region: &str,
) -> Vec<DnsRecord> {
    let fqdn = label.domain_under(name);
    let relative = match name.subdomain_prefix() {
        Some(prefix) => format!("{label}.{prefix}"),
        None => label.to_string(),
    };
    vec![
        pending(
            RecordPurpose::MailFromMx,
            RecordType::Mx,
            relative.clone(),
            fqdn.clone(),
            feedback_mx_host(sending_region),
            Some(MX_PRIORITY),
        ),
        pending(
            RecordPurpose::MailFromSpf,
            RecordType::Txt,
            relative,
            fqdn,
            SPF_VALUE.to_string(),
            None,
        ),
    ]
}

fn pending(
    record: RecordPurpose,
    record_type: RecordType,
    name: String,
    fqdn: String,
    value: String,
    priority: Option<u16>,
) -> DnsRecord {
    DnsRecord {
        record,
        record_type,
        name,
        fqdn,
        value,
        priority,
        status: RecordStatus::Pending,
        reason: None,
        observed: Vec::new(),
        suggested_value: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Vec<String> {
        vec!["tok1".into(), "tok2".into(), "tok3".into()]
    }

    #[test]
    fn apex_domain_uses_at_and_plain_dmarc() {
        let name = DomainName::parse("example.com").expect("valid");
        let records = expected_records(&name, &tokens(), "us-east-2");
        assert_eq!(records.len(), 6);
        let mx = &records[0];
        assert_eq!((mx.name.as_str(), mx.fqdn.as_str()), ("@", "example.com"));
        assert_eq!(mx.value, "inbound-smtp.us-east-2.amazonaws.com");
        assert_eq!(mx.priority, Some(10));
        assert_eq!(records[1].name, "@");
        assert_eq!(records[1].value, "v=spf1 include:amazonses.com ~all");
        assert_eq!(
            (records[2].name.as_str(), records[2].fqdn.as_str()),
            ("_dmarc", "_dmarc.example.com")
        );
        assert_eq!(records[2].value, "v=DMARC1; p=reject;");
        assert_eq!(records[3].name, "tok1._domainkey.example.com");
        assert_eq!(records[3].value, "tok1.dkim.amazonses.com");
        assert!(records.iter().all(|r| r.status == RecordStatus::Pending));
        assert!(records.iter().skip(1).all(|r| r.priority.is_none()));
    }

    #[test]
    fn subdomain_uses_its_prefix_under_a_multi_label_suffix() {
        let name = DomainName::parse("mail.company.co.uk").expect("valid");
        let records = expected_records(&name, &tokens(), "eu-west-1");
        assert_eq!(records[0].name, "mail");
        assert_eq!(records[0].value, "inbound-smtp.eu-west-1.amazonaws.com");
        assert_eq!(records[1].name, "mail");
        assert_eq!(records[2].name, "_dmarc.mail");
        assert_eq!(records[2].fqdn, "_dmarc.mail.company.co.uk");
        assert_eq!(records[5].fqdn, "tok3._domainkey.mail.company.co.uk");
    }

    #[test]
    fn mail_from_records_sit_at_the_label_under_the_domain() {
        let apex = DomainName::parse("example.com").expect("valid");
        let label = MailFromLabel::parse("send", &apex).expect("valid");
        let records = mail_from_records(&apex, &label, "eu-west-1");
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].record, RecordPurpose::MailFromMx);
        assert_eq!(
            (records[0].name.as_str(), records[0].fqdn.as_str()),
            ("send", "send.example.com")
        );
        assert_eq!(records[0].value, "feedback-smtp.eu-west-1.amazonses.com");
        assert_eq!(records[0].priority, Some(10));
        assert_eq!(records[1].record, RecordPurpose::MailFromSpf);
        assert_eq!(records[1].record_type, RecordType::Txt);
        assert_eq!(records[1].value, "v=spf1 include:amazonses.com ~all");
        assert_eq!(records[1].priority, None);

        let sub = DomainName::parse("mail.company.co.uk").expect("valid");
        let records = mail_from_records(&sub, &label, "us-east-2");
        assert_eq!(records[1].name, "send.mail");
        assert_eq!(records[1].fqdn, "send.mail.company.co.uk");
    }
}

/// TTL suggested for the records in a zone-file snippet.
pub const ZONE_FILE_TTL: u32 = 3600;

/// The records as a BIND zone-file snippet, owners fully qualified so it is right
/// whatever the zone's `$ORIGIN`.
pub fn zone_file(name: &DomainName, records: &[DnsRecord]) -> String {
    let mut out = format!(
        "; DNS records for {name}, from the Domains API.\n; Add them to the zone of {}.\n",
        name.registrable_domain()
    );
    for record in records {
        let value = match record.record_type {
            RecordType::Mx => format!(
                "{} {}.",
                record.priority.unwrap_or(MX_PRIORITY),
                record.value
            ),
            RecordType::Cname => format!("{}.", record.value),
            RecordType::Txt => quoted_txt(&record.value),
        };
        let kind = match record.record_type {
            RecordType::Mx => "MX",
            RecordType::Txt => "TXT",
            RecordType::Cname => "CNAME",
        };
        out.push_str(&format!(
            "{}.\t{ZONE_FILE_TTL}\tIN\t{kind}\t{value}\n",
            record.fqdn
        ));
    }
    out
}

/// A TXT value as zone-file character strings: quoted, escaped, and split into
/// strings of at most 255 bytes.
fn quoted_txt(value: &str) -> String {
    let escaped: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|chunk| {
            let text = String::from_utf8_lossy(chunk);
            format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
        })
        .collect();
    escaped.join(" ")
}

#[cfg(test)]
mod zone_file_tests {
    use super::*;

    #[test]
    fn zone_file_lines_are_fully_qualified_and_quoted() {
        let name = DomainName::parse("mail.example.com").expect("valid");
        let text = zone_file(
            &name,
            &expected_records(&name, &["tok".into()], "us-east-2"),
        );
        assert!(
            text.contains(
                "mail.example.com.\t3600\tIN\tMX\t10 inbound-smtp.us-east-2.amazonaws.com.\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "mail.example.com.\t3600\tIN\tTXT\t\"v=spf1 include:amazonses.com ~all\"\n"
            )
        );
        assert!(
            text.contains("_dmarc.mail.example.com.\t3600\tIN\tTXT\t\"v=DMARC1; p=reject;\"\n")
        );
        assert!(text.contains(
            "tok._domainkey.mail.example.com.\t3600\tIN\tCNAME\ttok.dkim.amazonses.com.\n"
        ));
        assert_eq!(quoted_txt("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quoted_txt(&"x".repeat(300)).matches('"').count(), 4);
    }
}
