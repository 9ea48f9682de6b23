#!/usr/bin/env python3
"""Every Lambda binary under the real Lambda runtime protocol.

Starts `cargo lambda watch` with the functions configured against the DynamoDB-API
test server (MOTO_ENDPOINT), makes an API key with `domains-admin`, invokes each
function with its events/ file through `cargo lambda invoke`, and checks each
answer; then the same key through `local-api --aws`, before and after revoking it.
No key may appear in any log, with every function logging at RUST_LOG=trace.
Run by scripts/test (which starts moto_server).
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import scriptlib  # scripts/scriptlib.py, beside this file
from scriptlib import CLOSED_PORT, candidate_port, listening_ports, spawn, start_local_api, stop

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "target"
CARGO_LAMBDA = [str(ROOT / ".venv/bin/cargo-lambda"), "lambda"]
EXAMPLE_KEY = "dk_Ex4mpleKeyF0rSamLocalInvokeOnly000000000"

passed = 0
failures = []


def check(name, condition, detail=""):
    global passed
    if condition:
        passed += 1
        print(f"ok   {name}")
    else:
        failures.append(name)
        print(f"FAIL {name}: {detail}")


def start_watch(env, env_file, log):
    """`cargo lambda watch`, which cannot bind port 0, on a candidate port: until it
    listens there itself (a port another process took meanwhile makes it exit:
    then again on another, 5 tries). (process, port)."""
    for _ in range(5):
        port = candidate_port()
        watch = spawn(CARGO_LAMBDA + ["watch", "-A", "127.0.0.1", "-P", str(port), "--ignore-changes",
                                      "--env-file", str(env_file)], log, cwd=ROOT, env=env)
        deadline = time.time() + 120
        while watch.poll() is None and port not in listening_ports(watch.pid):
            if time.time() > deadline:
                stop(watch)
                sys.exit(f"runtime proof: cargo lambda watch did not listen on 127.0.0.1:{port} within 120 s")
            time.sleep(0.1)
        if watch.poll() is None:
            return watch, port
        print(f"runtime proof: cargo lambda watch ended on port {port} (taken?): again on another",
              file=sys.stderr)
    sys.exit(f"runtime proof: cargo lambda watch never started; log: {log}")


def main():
    endpoint = os.environ.get("MOTO_ENDPOINT")
    if not endpoint:
        sys.exit("runtime proof: MOTO_ENDPOINT is not set (run scripts/test)")
    table = f"runtime-proof-{uuid.uuid4().hex[:12]}"
    env = {
        **os.environ,
        "TABLE_NAME": table,
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
        "AWS_ENDPOINT_URL_SESV2": endpoint,
        "AWS_ENDPOINT_URL_EVENTBRIDGE": endpoint,
        "AWS_REGION": "us-east-2",
        # The bus publish-events puts the domain events on (made below).
        "EVENT_BUS_NAME": f"{table}-domain-events",
        # A fresh account on the test server (tests/moto-ses): SES identities of its own.
        "AWS_ACCESS_KEY_ID": f"MOTOACCT{uuid.uuid4().int % 10**12:012d}",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_EC2_METADATA_DISABLED": "true",
        # DNS goes to a closed port on this machine: no query leaves it.
        "DNS_NAMESERVERS": f"127.0.0.1:{CLOSED_PORT}",
    }
    env.pop("DEV_API_KEYS", None)

    subprocess.run(["cargo", "build", "--quiet", "--locked", "--workspace", "--bins"], cwd=ROOT, check=True)
    admin = [str(TARGET / "debug/domains-admin")]
    subprocess.run(admin + ["table", "create"], env=env, check=True, capture_output=True)
    made = subprocess.run(admin + ["keys", "create", "--org", "org_123"], env=env, check=True,
                          capture_output=True, text=True).stdout
    key = re.search(r"^api_key: (\S+)$", made, re.M).group(1)
    key_id = re.search(r"^key_id: (\S+)$", made, re.M).group(1)

    # The bus, and a rule sending every domain event to an SQS queue (moto routes it).
    import boto3
    aws = dict(endpoint_url=endpoint, region_name="us-east-2", aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
               aws_secret_access_key="test")
    events, sqs = boto3.client("events", **aws), boto3.client("sqs", **aws)
    events.create_event_bus(Name=env["EVENT_BUS_NAME"])
    queue_url = sqs.create_queue(QueueName=f"{table}-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="all-domain-events", EventBusName=env["EVENT_BUS_NAME"],
                    EventPattern=json.dumps({"source": ["domains-api"]}))
    events.put_targets(Rule="all-domain-events", EventBusName=env["EVENT_BUS_NAME"],
                       Targets=[{"Id": "queue", "Arn": queue_arn}])

    env_file = TARGET / "runtime-proof.env"
    env_file.write_text("".join(f"{k}={env[k]}\n" for k in (
        "TABLE_NAME", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SESV2", "AWS_ENDPOINT_URL_EVENTBRIDGE",
        "EVENT_BUS_NAME", "AWS_REGION",
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_EC2_METADATA_DISABLED", "DNS_NAMESERVERS"))
        # The functions log at the most verbose level: even then no log line may
        # hold a key (checked below). cargo-lambda itself keeps its own level.
        + "RUST_LOG=trace\n"
        # Metrics on, as deployed: EMF lines on stdout (checked below).
        + "METRICS_NAMESPACE=DomainsApi/runtime-proof\n")

    logs = [TARGET / "runtime-proof-watch.log"]
    watch = None
    try:
        watch, port = start_watch(env, env_file, logs[0])

        def invoke(function, event_file, replace_key=None):
            path = ROOT / "events" / event_file
            if replace_key:
                text = path.read_text().replace(EXAMPLE_KEY, replace_key)
                tmp = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, dir=TARGET)
                tmp.write(text)
                tmp.close()
                path = Path(tmp.name)
            result = subprocess.run(
                CARGO_LAMBDA + ["invoke", function, "--data-file", str(path),
                                "-A", "127.0.0.1", "-P", str(port), "--output-format", "json"],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
            if result.returncode != 0:
                return {"invoke_error": result.stderr.strip()[-500:]}
            return json.loads(result.stdout)

        def http(function, event_file):
            answer = invoke(function, event_file)
            body = answer.get("body")
            return answer.get("statusCode"), json.loads(body) if body else answer

        allowed = invoke("authorizer", "authorizer-valid-key.json", replace_key=key)
        check("authorizer allows a key made with domains-admin",
              allowed.get("isAuthorized") is True and allowed.get("context", {}).get("organization_id") == "org_123",
              allowed)
        for event in ("authorizer-unknown-key.json", "authorizer-no-header.json"):
            denied = invoke("authorizer", event)
            check(f"authorizer denies {event}", denied.get("isAuthorized") is False, denied)

        status, body = http("create-domain", "create-domain.json")
        check("create-domain: 201 with the domain", status == 201 and body.get("name") == "example.com"
              and body.get("organization_id") == "org_123" and body.get("verified") is False, (status, body))
        status, body = http("list-domains", "list-domains.json")
        check("list-domains: 200 with it", status == 200 and [d["name"] for d in body] == ["example.com"], (status, body))
        status, body = http("get-domain", "get-domain.json")
        check("get-domain: 200", status == 200 and body.get("status") == "pending", (status, body))
        status, body = http("get-dns-records", "get-dns-records.json")
        # SES on moto issues DKIM tokens as SES does (tests/moto-ses).
        check("get-dns-records: 200 with the six records",
              status == 200 and len(body) == 6 and sum(r["record"] == "DKIM" for r in body) == 3, (status, body))
        status, body = http("verify-domain", "verify-domain.json")
        check("verify-domain: 200, checked", status == 200 and body.get("last_checked_at") is not None, (status, body))
        status, body = http("update-domain", "update-domain.json")
        # SES on moto stores the MAIL FROM domain (tests/moto-ses); the domain gains its two records.
        check("update-domain: 200 with the MAIL FROM subdomain and eight records",
              status == 200 and body.get("mail_from_subdomain") == "send" and len(body.get("records", [])) == 8
              and sum(r["record"].startswith("MAIL_FROM") for r in body["records"]) == 2, (status, body))
        # org_456 claims example.com, which org_123 holds (the claim events' organization).
        status, body = http("create-domain-claim", "create-domain-claim.json")
        check("create-domain-claim: 201, pending, with the TXT record to publish",
              status == 201 and body.get("status") == "pending"
              and body.get("record", {}).get("name") == "_domains-claim.example.com", (status, body))
        status, body = http("list-domain-claims", "list-domain-claims.json")
        check("list-domain-claims: 200 with it", status == 200 and [c["name"] for c in body] == ["example.com"],
              (status, body))
        status, body = http("get-domain-claim", "get-domain-claim.json")
        check("get-domain-claim: 200", status == 200 and body.get("status") == "pending", (status, body))
        status, body = http("verify-domain-claim", "verify-domain-claim.json")
        # DNS goes to a closed port: the lookup cannot be completed, and the claim says so.
        check("verify-domain-claim: 200, still pending, checked", status == 200 and body.get("status") == "pending"
              and body.get("last_checked_at") is not None and "could not be completed" in (body.get("reason") or ""),
              (status, body))
        status, body = http("delete-domain-claim", "delete-domain-claim.json")
        check("delete-domain-claim: 200, the claim as it was", status == 200 and body.get("name") == "example.com",
              (status, body))
        status, body = http("get-domain-claim", "get-domain-claim.json")
        check("get-domain-claim after delete: 404", status == 404 and body.get("message") == "Claim not found",
              (status, body))
        # The table's stream, a batch: the events reach the queue through the bus and its rule.
        published = invoke("publish-events", "publish-events.json")
        check("publish-events: the batch is published, no record to retry",
              published.get("batchItemFailures") == [], published)
        delivered = []
        for _ in range(20):
            got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            delivered += [json.loads(m["Body"]) for m in got.get("Messages", [])]
            if len(delivered) >= 3:
                break
        check("publish-events: the bus delivered created, verified and deleted to the rule's queue",
              [(e.get("detail-type"), e.get("source"), e.get("detail", {}).get("previous_status")) for e in delivered]
              == [("domain.created", "domains-api", None), ("domain.verified", "domains-api", "pending"),
                  ("domain.deleted", "domains-api", "verified")], delivered)
        summary = invoke("reverify-pending", "reverify-pending.json")
        # The domain's first scheduled check is a minute after creation: nothing is due yet.
        check("reverify-pending: a run summary, nothing due, no errors",
              summary.get("checked") == 0 and summary.get("errors") == 0 and "left_for_later" in summary, summary)
        summary = invoke("reverify-pending", "reverify-worker.json")
        check("reverify-pending, a worker's task: a run summary of its share",
              summary.get("checked") == 0 and summary.get("errors") == 0 and "left_for_later" in summary, summary)
        status, body = http("delete-domain", "delete-domain.json")
        check("delete-domain: 200, the domain as it was", status == 200 and body.get("name") == "example.com", (status, body))
        status, body = http("get-domain", "get-domain.json")
        check("get-domain after delete: 404", status == 404 and body.get("message") == "Domain not found", (status, body))

        # The same key through the dev server's --aws mode.
        logs.append(TARGET / "runtime-proof-local-api.log")
        api = None
        try:
            api, api_url = start_local_api(["--aws"], logs[-1], env)

            def get_domains(header):
                args = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"{api_url}/domains"]
                if header:
                    args += ["-H", f"Authorization: {header}"]
                return subprocess.run(args, capture_output=True, text=True).stdout

            check("local-api --aws accepts the domains-admin key", get_domains(f"Bearer {key}") == "200")
            check("local-api --aws: no key is 401", get_domains(None) == "401")
            check("local-api --aws: unknown key is 403", get_domains(f"Bearer {EXAMPLE_KEY}") == "403")
            subprocess.run(admin + ["keys", "revoke", key_id], env=env, check=True, capture_output=True)
            check("local-api --aws refuses the revoked key", get_domains(f"Bearer {key}") == "403")
        finally:
            stop(api)

        refused = invoke("authorizer", "authorizer-valid-key.json", replace_key=key)
        check("authorizer denies the revoked key", refused.get("isAuthorized") is False, refused)
    finally:
        # The whole group: cargo-lambda and the function processes it started.
        stop(watch)

    # The EMF lines the functions printed, as CloudWatch Logs would read them: every
    # metric a directive names is a number (or numbers) at the top level.
    emf = []
    for line in (TARGET / "runtime-proof-watch.log").read_text(errors="replace").splitlines():
        start = line.find("{")
        if start >= 0 and '"_aws":' in line:
            try:
                emf.append(json.loads(line[start:]))
            except json.JSONDecodeError:
                check("an EMF line is JSON", False, line)
    def well_formed(line):
        directive = line["_aws"]["CloudWatchMetrics"][0]
        return (directive["Namespace"] == "DomainsApi/runtime-proof"
                and all(isinstance(line.get(m["Name"]), (int, float, list)) for m in directive["Metrics"])
                and all(isinstance(line.get(d), str) for d in directive["Dimensions"][0]))
    check(f"every EMF line is well formed ({len(emf)} lines)", emf and all(well_formed(l) for l in emf), emf[:3])
    for what, test in [
        ("cold starts", lambda l: "ColdStarts" in l),
        ("a verification by outcome", lambda l: l.get("Operation") == "verify" and "Verifications" in l),
        ("SES calls by outcome", lambda l: l.get("Operation") == "ses" and l.get("Call") == "CreateEmailIdentity"),
        ("the scheduled run's summary", lambda l: l.get("Operation") == "reverify" and "LeftForLater" in l),
    ]:
        check(f"EMF metrics: {what}", any(test(l) for l in emf))

    key_hash = hashlib.sha256(key.encode()).hexdigest()
    for log in logs:
        text = log.read_text(errors="replace")
        check(f"no key, key hash or Authorization header in {log.name}",
              key not in text and key[3:] not in text and key_hash not in text
              and "authorization" not in text.lower() and "bearer" not in text.lower(), log)

    print(f"runtime proof: {passed} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    scriptlib.stop_on_signals()
    main()
