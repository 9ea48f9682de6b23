//! The SESv2 adapter's requests and error mapping, against aws-smithy-mocks.

use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sesv2::operation::create_email_identity::{
    CreateEmailIdentityError, CreateEmailIdentityOutput,
};
use aws_sdk_sesv2::operation::delete_email_identity::{
    DeleteEmailIdentityError, DeleteEmailIdentityOutput,
};
use aws_sdk_sesv2::operation::get_email_identity::{GetEmailIdentityError, GetEmailIdentityOutput};
use aws_sdk_sesv2::operation::put_email_identity_mail_from_attributes::{
    PutEmailIdentityMailFromAttributesError, PutEmailIdentityMailFromAttributesOutput,
};
use aws_sdk_sesv2::types::error::{
    AlreadyExistsException, LimitExceededException, NotFoundException, TooManyRequestsException,
};
use aws_sdk_sesv2::types::{
    BehaviorOnMxFailure, DkimAttributes, DkimStatus, MailFromAttributes, MailFromDomainStatus, Tag,
};
use aws_smithy_mocks::{Rule, RuleMode, mock};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use shared::DomainName;
use shared::identity::{Identity, IdentityError, IdentityOwner, IdentityProvider, SesIdentities};
use shared::model::SesStatus;

/// A client whose every request is answered by `rules`. Retries are off so each
/// rule sees exactly the requests the adapter makes.
fn ses(rules: &[&Rule]) -> SesIdentities {
    let (sdk, interceptor) = crate::common::mocked_sdk(rules, RuleMode::MatchAny);
    let config = aws_sdk_sesv2::config::Builder::from(&sdk)
        .interceptor(interceptor)
        .build();
    SesIdentities::new(Client::from_conf(config))
}

fn name() -> DomainName {
    DomainName::parse("mail.example.com").expect("valid")
}

fn owner() -> IdentityOwner {
    IdentityOwner::new("domains-table", "org_123")
}

fn dkim(tokens: &[&str]) -> DkimAttributes {
    tokens
        .iter()
        .fold(DkimAttributes::builder(), |b, t| b.tokens(*t))
        .build()
}

fn server_error() -> HttpResponse {
    HttpResponse::new(
        StatusCode::try_from(500).expect("status"),
        SdkBody::from(r#"{"message":"internal failure"}"#),
    )
}

#[tokio::test]
async fn create_asks_for_a_tagged_easy_dkim_domain_identity_and_returns_its_tokens() {
    let create = mock!(Client::create_email_identity)
        .match_requests(|req| {
            let tags: Vec<(&str, &str)> = req
                .tags()
                .iter()
                .map(|tag| (tag.key(), tag.value()))
                .collect();
            let organization = shared::identity::organization_tag_value("org_123");
            req.email_identity() == Some("mail.example.com")
                && req.dkim_signing_attributes().is_none()
                && tags
                    == [
                        ("domains-api:deployment", "domains-table"),
                        ("domains-api:organization", organization.as_str()),
                    ]
        })
        .then_output(|| {
            CreateEmailIdentityOutput::builder()
                .dkim_attributes(dkim(&["t1", "t2", "t3"]))
                .build()
        });
    let identities = ses(&[&create]);
    assert_eq!(
        identities.create(&name(), &owner()).await,
        Ok(vec!["t1".into(), "t2".into(), "t3".into()])
    );
    assert_eq!(create.num_calls(), 1);
}

#[tokio::test]
async fn create_maps_already_exists_and_throttling() {
    let exists = mock!(Client::create_email_identity).then_error(|| {
        CreateEmailIdentityError::AlreadyExistsException(AlreadyExistsException::builder().build())
    });
    assert_eq!(
        ses(&[&exists]).create(&name(), &owner()).await,
        Err(IdentityError::AlreadyExists)
    );

    let throttled = mock!(Client::create_email_identity).then_error(|| {
        CreateEmailIdentityError::TooManyRequestsException(
            TooManyRequestsException::builder()
                .message("Maximum sending rate exceeded")
                .build(),
        )
    });
    let result = ses(&[&throttled]).create(&name(), &owner()).await;
    assert!(
        matches!(result, Err(IdentityError::Throttled(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn server_errors_are_unavailable_not_caller_errors() {
    let failing = mock!(Client::create_email_identity).then_http_response(server_error);
    let result = ses(&[&failing]).create(&name(), &owner()).await;
    assert!(
        matches!(result, Err(IdentityError::Unavailable(_))),
        "{result:?}"
    );

    let failing_get = mock!(Client::get_email_identity).then_http_response(server_error);
    let result = ses(&[&failing_get]).get(&name()).await;
    assert!(
        matches!(result, Err(IdentityError::Unavailable(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn get_reads_tokens_and_owner_tags_and_maps_not_found() {
    let tag = |key: &str, value: &str| Tag::builder().key(key).value(value).build().expect("tag");
    let found = mock!(Client::get_email_identity)
        .match_requests(|req| req.email_identity() == Some("mail.example.com"))
        .then_output(move || {
            GetEmailIdentityOutput::builder()
                .dkim_attributes(dkim(&["a", "b", "c"]))
                .tags(tag("team", "mail"))
                .tags(tag(
                    "domains-api:organization",
                    &shared::identity::organization_tag_value("org_123"),
                ))
                .tags(tag("domains-api:deployment", "domains-table"))
                .build()
        });
    assert_eq!(
        ses(&[&found]).get(&name()).await,
        Ok(Identity {
            tokens: vec!["a".into(), "b".into(), "c".into()],
            owner: Some(owner()),
            dkim_status: Some(SesStatus::NotStarted),
            mail_from_domain: None,
            mail_from_status: None,
        })
    );

    let untagged = mock!(Client::get_email_identity).then_output(|| {
        GetEmailIdentityOutput::builder()
            .dkim_attributes(dkim(&["x"]))
            .build()
    });
    assert_eq!(
        ses(&[&untagged]).get(&name()).await.map(|i| i.owner),
        Ok(None)
    );

    // SES's DKIM status comes through as SES spells it (anything newer: pending).
    for (status, expected) in [
        (DkimStatus::Success, SesStatus::Success),
        (DkimStatus::Pending, SesStatus::Pending),
        (DkimStatus::Failed, SesStatus::Failed),
        (DkimStatus::TemporaryFailure, SesStatus::TemporaryFailure),
        (DkimStatus::NotStarted, SesStatus::NotStarted),
        (DkimStatus::from("SOMETHING_NEW"), SesStatus::Pending),
    ] {
        let rule = mock!(Client::get_email_identity).then_output(move || {
            GetEmailIdentityOutput::builder()
                .dkim_attributes(DkimAttributes::builder().status(status.clone()).build())
                .build()
        });
        assert_eq!(
            ses(&[&rule]).get(&name()).await.map(|i| i.dkim_status),
            Ok(Some(expected))
        );
    }

    let limit = mock!(Client::create_email_identity).then_error(|| {
        CreateEmailIdentityError::LimitExceededException(LimitExceededException::builder().build())
    });
    let result = ses(&[&limit]).create(&name(), &owner()).await;
    assert!(
        matches!(result, Err(IdentityError::LimitExceeded(_))),
        "{result:?}"
    );

    let missing = mock!(Client::get_email_identity).then_error(|| {
        GetEmailIdentityError::NotFoundException(NotFoundException::builder().build())
    });
    assert_eq!(
        ses(&[&missing]).get(&name()).await,
        Err(IdentityError::NotFound)
    );
}

#[tokio::test]
async fn mail_from_is_set_with_the_default_fallback_cleared_by_omission_and_read_back() {
    let set = mock!(Client::put_email_identity_mail_from_attributes)
        .match_requests(|req| {
            req.email_identity() == Some("mail.example.com")
                && req.mail_from_domain() == Some("send.mail.example.com")
                && req.behavior_on_mx_failure() == Some(&BehaviorOnMxFailure::UseDefaultValue)
        })
        .then_output(|| PutEmailIdentityMailFromAttributesOutput::builder().build());
    let cleared = mock!(Client::put_email_identity_mail_from_attributes)
        .match_requests(|req| req.mail_from_domain().is_none())
        .then_output(|| PutEmailIdentityMailFromAttributesOutput::builder().build());
    let identities = ses(&[&set, &cleared]);
    assert_eq!(
        identities
            .set_mail_from(&name(), Some("send.mail.example.com"))
            .await,
        Ok(())
    );
    assert_eq!(identities.set_mail_from(&name(), None).await, Ok(()));
    assert_eq!((set.num_calls(), cleared.num_calls()), (1, 1));

    let throttled = mock!(Client::put_email_identity_mail_from_attributes).then_error(|| {
        PutEmailIdentityMailFromAttributesError::TooManyRequestsException(
            TooManyRequestsException::builder().build(),
        )
    });
    let result = ses(&[&throttled]).set_mail_from(&name(), None).await;
    assert!(
        matches!(result, Err(IdentityError::Throttled(_))),
        "{result:?}"
    );
    let missing = mock!(Client::put_email_identity_mail_from_attributes).then_error(|| {
        PutEmailIdentityMailFromAttributesError::NotFoundException(
            NotFoundException::builder().build(),
        )
    });
    assert_eq!(
        ses(&[&missing]).set_mail_from(&name(), None).await,
        Err(IdentityError::NotFound)
    );

    // SES's MAIL FROM status, as SES spells it; an empty domain is none set.
    for (status, expected) in [
        (MailFromDomainStatus::Success, Some(SesStatus::Success)),
        (MailFromDomainStatus::Pending, Some(SesStatus::Pending)),
        (MailFromDomainStatus::Failed, Some(SesStatus::Failed)),
        (
            MailFromDomainStatus::TemporaryFailure,
            Some(SesStatus::TemporaryFailure),
        ),
    ] {
        let rule = mock!(Client::get_email_identity).then_output(move || {
            GetEmailIdentityOutput::builder()
                .mail_from_attributes(
                    MailFromAttributes::builder()
                        .mail_from_domain("send.mail.example.com")
                        .mail_from_domain_status(status.clone())
                        .behavior_on_mx_failure(BehaviorOnMxFailure::UseDefaultValue)
                        .build()
                        .expect("attributes"),
                )
                .build()
        });
        let identity = ses(&[&rule]).get(&name()).await.expect("read");
        assert_eq!(
            (
                identity.mail_from_domain.as_deref(),
                identity.mail_from_status
            ),
            (Some("send.mail.example.com"), expected)
        );
    }
    let unset = mock!(Client::get_email_identity).then_output(|| {
        GetEmailIdentityOutput::builder()
            .mail_from_attributes(
                MailFromAttributes::builder()
                    .mail_from_domain("")
                    .mail_from_domain_status(MailFromDomainStatus::Pending)
                    .behavior_on_mx_failure(BehaviorOnMxFailure::UseDefaultValue)
                    .build()
                    .expect("attributes"),
            )
            .build()
    });
    let identity = ses(&[&unset]).get(&name()).await.expect("read");
    assert_eq!(
        (identity.mail_from_domain, identity.mail_from_status),
        (None, None)
    );
}

#[tokio::test]
async fn delete_treats_not_found_as_done_and_reports_throttling() {
    let deleted = mock!(Client::delete_email_identity)
        .match_requests(|req| req.email_identity() == Some("mail.example.com"))
        .then_output(|| DeleteEmailIdentityOutput::builder().build());
    assert_eq!(ses(&[&deleted]).delete(&name()).await, Ok(()));
    assert_eq!(deleted.num_calls(), 1);

    let missing = mock!(Client::delete_email_identity).then_error(|| {
        DeleteEmailIdentityError::NotFoundException(NotFoundException::builder().build())
    });
    assert_eq!(ses(&[&missing]).delete(&name()).await, Ok(()));

    let throttled = mock!(Client::delete_email_identity).then_error(|| {
        DeleteEmailIdentityError::TooManyRequestsException(
            TooManyRequestsException::builder().build(),
        )
    });
    let result = ses(&[&throttled]).delete(&name()).await;
    assert!(
        matches!(result, Err(IdentityError::Throttled(_))),
        "{result:?}"
    );
}

/// The functions that seldom call SES build its client on first use (moto here).
/// On Amazon's roots, as deployed: building the connector parses them (moto speaks
/// plain HTTP, so no certificate is checked).
#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn an_identity_client_built_on_first_use_reaches_ses() {
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-2"))
        .credentials_provider(aws_sdk_sesv2::config::SharedCredentialsProvider::new(
            Credentials::new("test", "test", None, None, "test"),
        ))
        .endpoint_url(test_support::moto_endpoint())
        .http_client(shared::app::https_client(
            shared::config::TlsRoots::AmazonTrustServices,
        ))
        .build();
    let ses = SesIdentities::on_first_use(sdk);
    let name = DomainName::parse(&format!(
        "first-use-{}.example.com",
        uuid::Uuid::new_v4().simple()
    ))
    .expect("valid");
    let tokens = ses.create(&name, &owner()).await.expect("created on moto");
    // The project's moto extension (tests/moto-ses) gives tokens and tags, as SES does.
    assert_eq!(tokens.len(), 3, "{tokens:?}");
    assert_eq!(
        ses.get(&name).await,
        Ok(Identity {
            tokens,
            owner: Some(owner()),
            // moto-ses, as SES: pending until it has seen the CNAMEs.
            dkim_status: Some(SesStatus::Pending),
            mail_from_domain: None,
            mail_from_status: None,
        })
    );
    // The MAIL FROM domain is stored and pending until SES has seen its MX.
    let mail_from = format!("send.{name}");
    ses.set_mail_from(&name, Some(&mail_from))
        .await
        .expect("set on moto");
    let identity = ses.get(&name).await.expect("read");
    assert_eq!(
        (
            identity.mail_from_domain.as_deref(),
            identity.mail_from_status
        ),
        (Some(mail_from.as_str()), Some(SesStatus::Pending))
    );
    ses.set_mail_from(&name, None)
        .await
        .expect("cleared on moto");
    let identity = ses.get(&name).await.expect("read");
    assert_eq!(
        (identity.mail_from_domain, identity.mail_from_status),
        (None, None)
    );
    assert_eq!(
        ses.create(&name, &owner()).await,
        Err(IdentityError::AlreadyExists)
    );
    ses.delete(&name).await.expect("deleted");
    assert_eq!(ses.get(&name).await, Err(IdentityError::NotFound));
    ses.delete(&name)
        .await
        .expect("deleting again is done (NotFound)");
}
