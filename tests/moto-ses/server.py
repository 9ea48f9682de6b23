"""moto_server with an SESv2 that answers as SES does, and DynamoDB transactions
that are isolated as DynamoDB's are, for the project's tests.

moto 5's SESv2 differs from SES where this API's tenant-safety rules live: it
issues no Easy DKIM tokens, overwrites an identity that already exists instead of
answering AlreadyExistsException, and deletes a missing identity without
NotFoundException. This wraps moto's own backend so those paths are tested end to
end; everything else (tags returned by GetEmailIdentity, DynamoDB) is moto's.

moto_server answers requests on threads, and its TransactWriteItems is not
isolated: it applies items one by one and, when one fails, restores a copy of the
whole table taken at its start, undoing writes that other requests made
meanwhile. Under concurrent requests that loses writes DynamoDB never loses, so
every DynamoDB operation here runs under one lock (moto's speed is not measured).

moto 5 has no MAIL FROM attributes, and its DKIM status never moves. Here, as on
SES, PutEmailIdentityMailFromAttributes stores the MAIL FROM domain, and
GetEmailIdentity reports DKIM (and MAIL FROM) `SUCCESS` only once this server has
itself seen the three CNAMEs (the MX to feedback-smtp.<region>.amazonses.com)
in DNS for MOTO_SES_CONFIRM_SECONDS, and `TEMPORARY_FAILURE` when records it had
confirmed are gone. It looks when asked (GetEmailIdentity), resolving without a
cache from the DNS server at MOTO_SES_DNS_TOP (the loopback hierarchy's `com.`
server, scripts/dns-hierarchy); without one, nothing is ever confirmed.

Still unlike SES (docs/testing.md): SES looks on its own schedule (minutes, up to
72 hours) and gives up with FAILED after 72 hours; no per-account sending quota or
throttling; identity names are not validated.

Accounts: a request signed with the access key id MOTOACCT<12 digits> is served
in the account of that number, so each test (a deployment of its own, with its own SES
identities) can have a fresh account on one server.

Usage: python tests/moto-ses/server.py -H 127.0.0.1 -p PORT   (moto_server's flags)
       python tests/moto-ses/server.py -H 127.0.0.1 -p 0 --port-file FILE
           binds a free port itself and, once it listens, writes the port to FILE
           (the test scripts start it so: no port is picked before it is bound)
Env:   MOTO_SES_MAX_IDENTITIES=N   answer LimitExceededException past N identities
       MOTO_SES_DNS_TOP=HOST:PORT  where SES's DNS resolution starts (none: never confirms);
                                   every server it is referred to is asked on the same
                                   PORT (the hierarchy's servers share one port)
       MOTO_SES_CONFIRM_SECONDS=S  how long records must be seen before SUCCESS (default 2)
       MOTO_DYNAMODB_METER=FILE    meter DynamoDB capacity units by item size into FILE (meter.py)
"""

import os
import secrets
import string
import sys

import functools
import json
import threading
import time

import dns.flags
import dns.message
import dns.query
import dns.rdatatype

from moto.core.exceptions import JsonRESTError
from moto.core.responses import BaseResponse
from moto.dynamodb.models import DynamoDBBackend
from moto.ses.exceptions import NotFoundException
from moto.ses.utils import get_arn
from moto.sesv2.models import SESV2Backend
from moto.sesv2 import urls as sesv2_urls
from moto.sesv2.responses import SESV2Response
from moto.server import main

TOKEN_ALPHABET = string.ascii_lowercase + string.digits


class AlreadyExistsException(JsonRESTError):
    code = 400

    def __init__(self, message):
        super().__init__("AlreadyExistsException", message)


class LimitExceededException(JsonRESTError):
    code = 400

    def __init__(self, message):
        super().__init__("LimitExceededException", message)


def dkim_token():
    return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(32))


moto_create = SESV2Backend.create_email_identity


def create_email_identity(self, email_identity, tags, dkim_signing_attributes, configuration_set_name):
    identities = self.core_backend.email_identities
    if email_identity in identities:
        raise AlreadyExistsException(f"Email identity {email_identity} already exist.")
    limit = os.environ.get("MOTO_SES_MAX_IDENTITIES")
    if limit is not None and len(identities) >= int(limit):
        raise LimitExceededException("Maximum number of identities reached.")
    identity = moto_create(self, email_identity, tags, dkim_signing_attributes, configuration_set_name)
    if "@" not in email_identity and not dkim_signing_attributes:
        # Easy DKIM: three tokens, pending until SES has seen the CNAMEs.
        identity.dkim_attributes.update(
            {
                "SigningEnabled": True,
                "Status": "PENDING",
                "Tokens": [dkim_token() for _ in range(3)],
            }
        )
    return identity


def delete_email_identity(self, email_identity):
    identities = self.core_backend.email_identities
    if email_identity not in identities:
        raise NotFoundException(f"Email identity {email_identity} does not exist.")
    del identities[email_identity]
    with SEEN_LOCK:
        SEEN.pop((self.account_id, self.region_name, email_identity), None)
    arn = get_arn(self.core_backend, "ses", f"email-identity/{email_identity}")
    self.core_backend.tagger.delete_all_tags_for_resource(arn)


def top_server():
    configured = os.environ.get("MOTO_SES_DNS_TOP")
    if not configured:
        return None
    host, _, port = configured.rpartition(":")
    return host, int(port)


def ask(query, server):
    answer = dns.query.udp(query, server[0], port=server[1], timeout=2)
    if answer.flags & dns.flags.TC:
        answer = dns.query.tcp(query, server[0], port=server[1], timeout=2)
    return answer


def lookup(name, rdtype):
    """The records of `rdtype` at `name`, as text (none on any failure), resolved
    iteratively from the top server, following referrals by their glue. Nothing
    is cached, so an absence seen before a record was published is never kept."""
    server = top_server()
    if server is None:
        return []
    wanted = dns.rdatatype.from_text(rdtype)
    query = dns.message.make_query(name, rdtype)
    query.flags &= ~dns.flags.RD
    for _ in range(8):
        try:
            answer = ask(query, server)
        except Exception:
            return []
        if answer.answer:
            return [rdata.to_text().lower() for rrset in answer.answer if rrset.rdtype == wanted for rdata in rrset]
        glue = [rdata.address for rrset in answer.additional if rrset.rdtype == dns.rdatatype.A for rdata in rrset]
        referred = any(rrset.rdtype == dns.rdatatype.NS for rrset in answer.authority)
        if not (referred and glue):
            return []
        # The hierarchy's servers all listen on the top server's port.
        server = (glue[0], server[1])
    return []


def dkim_published(domain, tokens):
    return bool(tokens) and all(
        f"{token}.dkim.amazonses.com." in lookup(f"{token}._domainkey.{domain}", "CNAME") for token in tokens
    )


def mail_from_published(mail_from_domain, region):
    host = f"feedback-smtp.{region}.amazonses.com."
    return any(value.split()[-1] == host for value in lookup(mail_from_domain, "MX"))


def advance(state, seen, now):
    """SES's status after one look: SUCCESS once seen for the confirm time;
    TEMPORARY_FAILURE when confirmed records are gone, SUCCESS again when back."""
    confirm = float(os.environ.get("MOTO_SES_CONFIRM_SECONDS", "2"))
    if not seen:
        state["seen_since"] = None
        if state["status"] == "SUCCESS":
            state["status"] = "TEMPORARY_FAILURE"
        return
    if state["status"] == "TEMPORARY_FAILURE":
        state["status"] = "SUCCESS"
        return
    if state.get("seen_since") is None:
        state["seen_since"] = now
    if state["status"] != "SUCCESS" and now - state["seen_since"] >= confirm:
        state["status"] = "SUCCESS"


# What this server has seen of each identity: {(account, region, name): {...}}.
SEEN = {}
SEEN_LOCK = threading.Lock()


def look(backend, name, identity):
    """Looks at DNS as SES would and updates the identity's statuses."""
    key = (backend.account_id, backend.region_name, name)
    now = time.monotonic()
    with SEEN_LOCK:
        seen = SEEN.setdefault(key, {"dkim": {"status": "PENDING"}, "mail_from": None})
    tokens = identity.dkim_attributes.get("Tokens") or []
    if tokens and identity.dkim_attributes.get("Status") in ("PENDING", "SUCCESS", "TEMPORARY_FAILURE"):
        advance(seen["dkim"], dkim_published(name, tokens), now)
        identity.dkim_attributes["Status"] = seen["dkim"]["status"]
    attributes = getattr(identity, "mail_from_attributes", None)
    if attributes:
        state = seen["mail_from"]
        if state is None or state.get("domain") != attributes["MailFromDomain"]:
            state = seen["mail_from"] = {"domain": attributes["MailFromDomain"], "status": "PENDING"}
        advance(state, mail_from_published(attributes["MailFromDomain"], backend.region_name), now)
        attributes["MailFromDomainStatus"] = state["status"]


def put_email_identity_mail_from_attributes(self):
    name = self._get_param("EmailIdentity")
    identity = self.sesv2_backend.get_email_identity(email_identity=name)
    mail_from_domain = self._get_param("MailFromDomain")
    if mail_from_domain:
        identity.mail_from_attributes = {
            "MailFromDomain": mail_from_domain,
            "MailFromDomainStatus": "PENDING",
            "BehaviorOnMxFailure": self._get_param("BehaviorOnMxFailure") or "USE_DEFAULT_VALUE",
        }
    else:
        identity.mail_from_attributes = None
    backend = self.sesv2_backend
    with SEEN_LOCK:
        state = SEEN.get((backend.account_id, backend.region_name, name))
        if state is not None:
            state["mail_from"] = None
    return json.dumps({})


def get_email_identity(self):
    name = self._get_param("EmailIdentity")
    identity = self.sesv2_backend.get_email_identity(email_identity=name)
    look(self.sesv2_backend, name, identity)
    answer = dict(identity.get_response_object)
    attributes = getattr(identity, "mail_from_attributes", None)
    if attributes:
        answer["MailFromAttributes"] = attributes
    return json.dumps(answer)


moto_current_account = BaseResponse.get_current_account


def get_current_account(self):
    access_key = self.get_access_key()
    if len(access_key) == 20 and access_key.startswith("MOTOACCT") and access_key[8:].isdigit():
        return access_key[8:]
    return moto_current_account(self)


BaseResponse.get_current_account = get_current_account

DYNAMODB_LOCK = threading.RLock()


def serialized(method):
    @functools.wraps(method)
    def locked(*args, **kwargs):
        with DYNAMODB_LOCK:
            return method(*args, **kwargs)

    return locked


# Capacity units by item size, when MOTO_DYNAMODB_METER names a file (meter.py),
# metered inside the lock so each write's before and after are its own.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import meter  # noqa: E402

meter.install(DynamoDBBackend)

for name in (
    "put_item",
    "get_item",
    "update_item",
    "delete_item",
    "query",
    "scan",
    "batch_get_item",
    "transact_get_items",
    "transact_write_items",
):
    setattr(DynamoDBBackend, name, serialized(getattr(DynamoDBBackend, name)))

SESV2Backend.create_email_identity = create_email_identity
SESV2Backend.delete_email_identity = delete_email_identity
SESV2Response.put_email_identity_mail_from_attributes = put_email_identity_mail_from_attributes
# moto routes no SESv2 path under an identity but policies; the MAIL FROM one is added.
sesv2_urls.url_paths["{0}/v2/email/identities/(?P<EmailIdentity>[^/]+)/mail-from$"] = SESV2Response.dispatch
SESV2Response.get_email_identity = get_email_identity


def serving_on_the_port_it_binds(port_file):
    """moto_server's run_simple, which binds the port (0: a free one), records the
    port it got in MOTO_PORT (moto builds URLs with it) and writes it to
    `port_file` (atomically) before serving."""
    from werkzeug.serving import make_server

    def run_simple(hostname, port, application, threaded=False, request_handler=None,
                   ssl_context=None, **_ignored):
        server = make_server(hostname, port, application, threaded=threaded,
                             request_handler=request_handler, ssl_context=ssl_context)
        os.environ["MOTO_PORT"] = str(server.port)
        partial = f"{port_file}.partial"
        with open(partial, "w") as out:
            out.write(f"{server.port}\n")
        os.replace(partial, port_file)
        server.log_startup()
        server.serve_forever()

    return run_simple


def exit_at_once(_signum, _frame):
    """moto_server's TERM and INT handler, without the interpreter's teardown: after a
    full test run (thousands of tables, items and identities in memory) Python spent
    some 25 s freeing them on sys.exit, busy and still holding its port, so the
    first moto outlived scripts/test, which had signalled it and left. Nothing is lost: the state lives
    in memory only, and the meter rewrites its file after every request."""
    os._exit(0)


if __name__ == "__main__":
    import moto.server

    moto.server.signal_handler = exit_at_once
    arguments = sys.argv[1:]
    if "--port-file" in arguments:
        at = arguments.index("--port-file")
        port_file = arguments[at + 1]
        del arguments[at:at + 2]
        moto.server.run_simple = serving_on_the_port_it_binds(port_file)
    sys.exit(main(arguments))
