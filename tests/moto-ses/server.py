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

Still unlike SES (docs/testing.md): DKIM status stays PENDING (nothing checks
DNS), no per-account sending quota or throttling, and identity names are not
validated.

Accounts: a request signed with the access key id MOTOACCT<12 digits> is served
in the account of that number, so each test (a deployment of its own, with its own SES
identities) can have a fresh account on one server.

Usage: python tests/moto-ses/server.py -H 127.0.0.1 -p PORT   (moto_server's flags)
Env:   MOTO_SES_MAX_IDENTITIES=N   answer LimitExceededException past N identities
"""

import os
import secrets
import string
import sys

import functools
import threading

from moto.core.exceptions import JsonRESTError
from moto.core.responses import BaseResponse
from moto.dynamodb.models import DynamoDBBackend
from moto.ses.exceptions import NotFoundException
from moto.ses.utils import get_arn
from moto.sesv2.models import SESV2Backend
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
    arn = get_arn(self.core_backend, "ses", f"email-identity/{email_identity}")
    self.core_backend.tagger.delete_all_tags_for_resource(arn)


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

if __name__ == "__main__":
    sys.exit(main())
