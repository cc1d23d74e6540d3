#!/usr/bin/env python3
"""Conformance suite: drives mpgate-emulator with clients nobody here wrote (boto3/botocore and the
AWS CLI) and checks that

  (a) botocore parses every response,
  (b) every error surfaces as the modeled exception class with the status docs/aws-behaviour.md gives,
  (c) every raw response body validates against botocore's service-model shape (types, required
      members, unknown members, lengths, ranges, patterns, enums),
  (d) botocore's SigV4 is accepted and a corrupted signature is rejected,
  (e) every error code the emulator answers is one the model defines for that operation, or one
      docs/emulator.md lists as a deliberate choice ("Errors outside the model"), or one a check
      injected itself with a `Status` fault.

Usage: python3 emulator/conformance/run.py /path/to/mpgate-emulator
Prints one line per check and closes with `conformance: N passed, M failed`; exits 1 on any failure.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

import boto3
import botocore
import botocore.config
import botocore.exceptions
import botocore.session
import botocore.utils
from botocore import UNSIGNED

PAID = "8f3kq2demopaid0mpgate01"
METERED = "3m7kd9demometer0mpgate01"
SAAS = "9s2aa4demosaas00mpgate01"
ACCOUNT = "111122223333"
CONTRACT_SKU = "prod-demo0contract0mpgate"
CONTRACT_LICENSE = "arn:aws:license-manager::294406891311:license:l-0123456789abcdef0123456789abcdef"
FINGERPRINT = "aws:294406891311:AWS/Marketplace:issuer-fingerprint"
LICENSE_ROLE = "arn:aws:iam::111122223333:role/mpgate-license-token"

# Explicit statuses: License Manager's httpError traits (docs/aws-behaviour.md §4.5); metering 400/500 (§2.6).
LM_STATUS = {
    "ValidationException": 400, "InvalidParameterValueException": 400, "ResourceNotFoundException": 400,
    "NoEntitlementsAllowedException": 400, "AccessDeniedException": 401, "AuthorizationException": 403,
    "ConflictException": 409, "RateLimitExceededException": 429, "RedirectException": 308,
    "ServerInternalException": 500,
}

PASSED, FAILED = [], []
# While on, raw answers may carry members no model defines (the variance mode adds some: clients must
# ignore them).
VARIANCE = {"on": False}
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
# How many answers of each (operation, code) a check injected with a Status fault: the test chose
# those codes, not the emulator.
INJECTED = {}
MODEL_OPS = {
    "meteringmarketplace": ["RegisterUsage", "MeterUsage", "BatchMeterUsage", "ResolveCustomer"],
    "license-manager": ["CheckoutLicense", "ExtendLicenseConsumption", "CheckInLicense", "GetLicense",
                        "ListReceivedLicenses", "GetAccessToken"],
    "sts": ["AssumeRoleWithWebIdentity", "GetCallerIdentity"],
}


def unmodeled_list():
    """The table under "Errors outside the model" in docs/emulator.md: code -> set of operations ("*": all)."""
    with open(os.path.join(REPO, "docs", "emulator.md")) as f:
        text = f.read()
    section = text.split("### Errors outside the model", 1)[1].split("\n#", 1)[0]
    allowed = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        ops = {o.strip().strip("`") for o in cells[1].split(",")}
        allowed.setdefault(cells[0].strip("`"), set()).update(ops)
    assert allowed, "docs/emulator.md has no \"Errors outside the model\" table"
    return allowed


UNMODELED = unmodeled_list()


def modeled_codes(operation_model):
    """The wire codes of the errors the model defines for an operation (awsQuery shapes name theirs)."""
    return {e.metadata.get("error", {}).get("code", e.name) for e in operation_model.error_shapes}


def code_allowed(operation_model, code):
    op = operation_model.name
    return code in modeled_codes(operation_model) or bool(UNMODELED.get(code, set()) & {op, "*"})


def check(name, fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the suite
        FAILED.append(name)
        detail = "".join(traceback.format_exception_only(type(e), e)).strip()
        print(f"FAIL {name}: {detail}")
        return
    PASSED.append(name)
    print(f"ok   {name}")


# ---------- shape validation (c) ----------

def validate(shape, value, path, raw, errors):
    t = shape.type_name
    meta = shape.metadata
    if t == "structure":
        if not isinstance(value, dict):
            errors.append(f"{path}: expected object, got {type(value).__name__}")
            return
        for k in value:
            if raw and k not in shape.members and k != "__type" and not VARIANCE["on"]:
                errors.append(f"{path}: unknown member {k}")
        for r in shape.required_members:
            if r not in value:
                errors.append(f"{path}: missing required member {r}")
        for k, v in value.items():
            if k in shape.members:
                validate(shape.members[k], v, f"{path}.{k}", raw, errors)
    elif t == "list":
        if not isinstance(value, list):
            errors.append(f"{path}: expected list")
            return
        if "min" in meta and len(value) < meta["min"]:
            errors.append(f"{path}: fewer than {meta['min']} items")
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{path}: more than {meta['max']} items")
        for i, v in enumerate(value):
            validate(shape.member, v, f"{path}[{i}]", raw, errors)
    elif t == "map":
        if not isinstance(value, dict):
            errors.append(f"{path}: expected map")
    elif t in ("string",):
        if not isinstance(value, str):
            errors.append(f"{path}: expected string, got {type(value).__name__}")
            return
        if "min" in meta and len(value) < meta["min"]:
            errors.append(f"{path}: shorter than {meta['min']}")
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{path}: longer than {meta['max']}")
        if "pattern" in meta and not re.search(meta["pattern"], value):
            errors.append(f"{path}: {value[:40]!r} does not match {meta['pattern']}")
        if shape.enum and value not in shape.enum:
            errors.append(f"{path}: {value!r} not in enum")
    elif t in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"{path}: expected integer")
            return
        if "min" in meta and value < meta["min"]:
            errors.append(f"{path}: below {meta['min']}")
        if "max" in meta and value > meta["max"]:
            errors.append(f"{path}: above {meta['max']}")
    elif t == "boolean":
        if not isinstance(value, bool):
            errors.append(f"{path}: expected boolean")
    elif t == "timestamp":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) if raw else hasattr(value, "year")
        if not ok:
            errors.append(f"{path}: expected timestamp, got {value!r}")
    elif t in ("double", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.append(f"{path}: expected number")


class Capture:
    """Keeps the raw HTTP answer of the last call of a client (botocore's before-parse event)."""

    def __init__(self, client):
        self.last = None
        client.meta.events.register("before-parse.*.*", self.keep)

    def keep(self, operation_model, response_dict, **_):
        self.last = (operation_model, response_dict)


def validate_raw(cap):
    op, resp = cap.last
    body = resp["body"]
    protocol = op.service_model.resolved_protocol
    if protocol != "json":
        return
    doc = json.loads(body or b"{}")
    errors = []
    if resp["status_code"] < 300:
        validate(op.output_shape, doc, op.name, True, errors)
    else:
        code = doc.get("__type", "").split("#")[-1]
        shape = next((e for e in op.error_shapes if e.name == code), None)
        if shape is not None:
            validate(shape, doc, code, True, errors)
    assert not errors, "; ".join(errors)


def ok(client, cap, method, **kw):
    """Calls, then checks (a) parsed and (c) the raw body against the output shape."""
    out = getattr(client, method)(**kw)
    validate_raw(cap)
    errors = []
    op = cap.last[0]
    parsed = {k: v for k, v in out.items() if k != "ResponseMetadata"}
    validate(op.output_shape, parsed, op.name + "(parsed)", False, errors)
    assert not errors, "; ".join(errors)
    return out


def fails(client, cap, method, code, status, injected=False, **kw):
    """Calls and expects (b) the modeled exception class `code` with HTTP `status`; unless the check
    `injected` that code itself, (e) it must be modeled for the operation or listed."""
    try:
        getattr(client, method)(**kw)
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        got_status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        assert got == code, f"expected {code}, got {got}: {e.response['Error'].get('Message')}"
        assert got_status == status, f"{code}: expected HTTP {status}, got {got_status}"
        modeled = getattr(client.exceptions, code, None)
        op = cap.last[0]
        assert injected or code_allowed(op, code), (
            f"{code} is not an error the model defines for {op.name}, nor on the list in docs/emulator.md")
        if code in [s.name for s in op.error_shapes]:
            assert modeled is not None and isinstance(e, modeled), f"{type(e).__name__} is not the modeled {code}"
        validate_raw(cap)
        return e
    raise AssertionError(f"expected {code}, call succeeded")


# ---------- environment ----------

def load_env(env_dir, workload):
    env = {}
    with open(os.path.join(env_dir, workload + ".env")) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            env[k] = v
    return env


def clean_env():
    for k in list(os.environ):
        if k.startswith("AWS_") or k.startswith("ECS_"):
            del os.environ[k]
    os.environ["AWS_CONFIG_FILE"] = "/dev/null"
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"


NO_RETRY = botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=5, connect_timeout=2)


def client(env_dir, workload, service="meteringmarketplace", region=None):
    clean_env()
    os.environ.update(load_env(env_dir, workload))
    c = boto3.Session().client(service, region_name=region or os.environ.get("AWS_REGION", "us-east-1"), config=NO_RETRY)
    return c, Capture(c)


def control(url, path, body=None):
    if path == "/_emulator/faults" and isinstance(body.get("fault"), dict) and "Status" in body["fault"]:
        key = (body["op"], body["fault"]["Status"][1])
        INJECTED[key] = INJECTED.get(key, 0) + body.get("count", 1)
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method="POST" if data is not None else "GET")
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read() or b"null")


def now():
    return time.time()


# ---------- the suite ----------

def metering_checks(url, env_dir):
    c, cap = client(env_dir, "ecs-task")
    ts = now()
    check("RegisterUsage ok (signature is a JWT)",
          lambda: len(ok(c, cap, "register_usage", ProductCode=PAID, PublicKeyVersion=1, Nonce="n")["Signature"].split(".")) == 3 or 1 / 0)
    check("RegisterUsage InvalidProductCodeException 400",
          lambda: fails(c, cap, "register_usage", "InvalidProductCodeException", 400, ProductCode="nope", PublicKeyVersion=1))
    check("RegisterUsage InvalidPublicKeyVersionException 400",
          lambda: fails(c, cap, "register_usage", "InvalidPublicKeyVersionException", 400, ProductCode=PAID, PublicKeyVersion=9))
    u, ucap = client(env_dir, "unsubscribed-task")
    check("RegisterUsage CustomerNotEntitledException 400",
          lambda: fails(u, ucap, "register_usage", "CustomerNotEntitledException", 400, ProductCode=PAID, PublicKeyVersion=1))
    lap, lcap = client(env_dir, "laptop")
    check("RegisterUsage PlatformNotSupportedException 400 (static keys)",
          lambda: fails(lap, lcap, "register_usage", "PlatformNotSupportedException", 400, ProductCode=PAID, PublicKeyVersion=1))
    eu, eucap = client(env_dir, "ecs-task", region="eu-west-1")
    check("RegisterUsage InvalidRegionException 400",
          lambda: fails(eu, eucap, "register_usage", "InvalidRegionException", 400, ProductCode=PAID, PublicKeyVersion=1))
    sp, spcap = client(env_dir, "seller-preview-task")
    check("RegisterUsage seller preview mode skips the entitlement check",
          lambda: ok(sp, spcap, "register_usage", ProductCode=PAID, PublicKeyVersion=1))
    irsa, icap = client(env_dir, "eks-irsa")
    check("RegisterUsage via IRSA (STS AssumeRoleWithWebIdentity through botocore)",
          lambda: ok(irsa, icap, "register_usage", ProductCode=PAID, PublicKeyVersion=2))

    # MeterUsage
    hour_ago = ts - 3600
    check("MeterUsage ok", lambda: ok(c, cap, "meter_usage", ProductCode=METERED, Timestamp=hour_ago,
                                      UsageDimension="requests", UsageQuantity=5))

    def same_record():
        a = ok(c, cap, "meter_usage", ProductCode=METERED, Timestamp=ts - 7200, UsageDimension="gb_processed", UsageQuantity=7)
        b = ok(c, cap, "meter_usage", ProductCode=METERED, Timestamp=ts - 7200 + 1, UsageDimension="gb_processed", UsageQuantity=7)
        assert a["MeteringRecordId"] == b["MeteringRecordId"], (a, b)
    check("MeterUsage same {task, dimension, hour, quantity} -> same MeteringRecordId", same_record)
    check("MeterUsage DuplicateRequestException 400 (different quantity, same hour)",
          lambda: fails(c, cap, "meter_usage", "DuplicateRequestException", 400, ProductCode=METERED,
                        Timestamp=ts - 7200, UsageDimension="gb_processed", UsageQuantity=8))
    check("MeterUsage TimestampOutOfBoundsException 400 (7 h old)",
          lambda: fails(c, cap, "meter_usage", "TimestampOutOfBoundsException", 400, ProductCode=METERED,
                        Timestamp=ts - 7 * 3600, UsageDimension="requests", UsageQuantity=1))
    check("MeterUsage TimestampOutOfBoundsException 400 (1 h ahead)",
          lambda: fails(c, cap, "meter_usage", "TimestampOutOfBoundsException", 400, ProductCode=METERED,
                        Timestamp=ts + 3600, UsageDimension="requests", UsageQuantity=1))
    check("MeterUsage InvalidUsageDimensionException 400",
          lambda: fails(c, cap, "meter_usage", "InvalidUsageDimensionException", 400, ProductCode=METERED,
                        Timestamp=ts, UsageDimension="nope", UsageQuantity=1))
    check("MeterUsage InvalidProductCodeException 400",
          lambda: fails(c, cap, "meter_usage", "InvalidProductCodeException", 400, ProductCode="nope",
                        Timestamp=ts, UsageDimension="requests", UsageQuantity=1))
    check("MeterUsage CustomerNotEntitledException 400",
          lambda: fails(u, ucap, "meter_usage", "CustomerNotEntitledException", 400, ProductCode=METERED,
                        Timestamp=ts, UsageDimension="requests", UsageQuantity=1))
    check("MeterUsage InvalidEndpointRegionException 400",
          lambda: fails(eu, eucap, "meter_usage", "InvalidEndpointRegionException", 400, ProductCode=METERED,
                        Timestamp=ts, UsageDimension="requests", UsageQuantity=1))
    tags = lambda *kv: [{"Key": k, "Value": v} for k, v in kv]  # noqa: E731
    t3 = ts - 3 * 3600
    check("MeterUsage with UsageAllocations ok",
          lambda: ok(c, cap, "meter_usage", ProductCode=METERED, Timestamp=t3, UsageDimension="requests", UsageQuantity=10,
                     UsageAllocations=[{"AllocatedUsageQuantity": 6, "Tags": tags(("team", "a"))},
                                       {"AllocatedUsageQuantity": 4}]))
    check("MeterUsage InvalidUsageAllocationsException 400 (sum != quantity)",
          lambda: fails(c, cap, "meter_usage", "InvalidUsageAllocationsException", 400, ProductCode=METERED,
                        Timestamp=ts - 4 * 3600, UsageDimension="requests", UsageQuantity=10,
                        UsageAllocations=[{"AllocatedUsageQuantity": 3}]))
    check("MeterUsage InvalidUsageAllocationsException 400 (repeated tag set)",
          lambda: fails(c, cap, "meter_usage", "InvalidUsageAllocationsException", 400, ProductCode=METERED,
                        Timestamp=ts - 4 * 3600, UsageDimension="requests", UsageQuantity=2,
                        UsageAllocations=[{"AllocatedUsageQuantity": 1, "Tags": tags(("k", "v"))},
                                          {"AllocatedUsageQuantity": 1, "Tags": tags(("k", "v"))}]))
    check("MeterUsage InvalidTagException 400 (bad tag character)",
          lambda: fails(c, cap, "meter_usage", "InvalidTagException", 400, ProductCode=METERED,
                        Timestamp=ts - 4 * 3600, UsageDimension="requests", UsageQuantity=1,
                        UsageAllocations=[{"AllocatedUsageQuantity": 1, "Tags": tags(("k", "v~"))}]))
    def client_token():
        args = dict(ProductCode=METERED, Timestamp=ts - 5 * 3600, UsageDimension="requests", UsageQuantity=1,
                    ClientToken="tok-1")
        a = ok(c, cap, "meter_usage", **args)
        b = ok(c, cap, "meter_usage", **args)
        assert a["MeteringRecordId"] == b["MeteringRecordId"], (a, b)
        fails(c, cap, "meter_usage", "IdempotencyConflictException", 400, **dict(args, Timestamp=t3, UsageQuantity=11))
    check("MeterUsage ClientToken reuse: the same request -> the same record; other parameters -> "
          "IdempotencyConflictException 400", client_token)
    check("MeterUsage PlatformNotSupportedException 400 (static keys)",
          lambda: fails(lap, lcap, "meter_usage", "PlatformNotSupportedException", 400, ProductCode=METERED,
                        Timestamp=ts, UsageDimension="requests", UsageQuantity=1))

    def dry_runs():
        before = len(control(url, "/_emulator/metering"))
        r = ok(c, cap, "meter_usage", ProductCode=METERED, Timestamp=ts, UsageDimension="requests", DryRun=True)
        assert "MeteringRecordId" not in r and json.loads(cap.last[1]["body"]) == {}, (r, cap.last[1]["body"])
        control(url, "/_emulator/dry-run", {"answer": "RecordId"})
        r = ok(c, cap, "meter_usage", ProductCode=METERED, Timestamp=ts, UsageDimension="requests", DryRun=True)
        assert "MeteringRecordId" in r
        control(url, "/_emulator/dry-run", {"answer": "DryRunOperationError"})
        fails(c, cap, "meter_usage", "DryRunOperation", 412, ProductCode=METERED, Timestamp=ts,
              UsageDimension="requests", DryRun=True)
        control(url, "/_emulator/dry-run", {"answer": None})
        assert len(control(url, "/_emulator/metering")) == before, "a dry run was recorded"
    check("MeterUsage DryRun: each configurable answer, nothing recorded", dry_runs)

    def ledger():
        recs = control(url, "/_emulator/metering")
        keys = [(r["workload"], r["dimension"], r["hour"]) for r in recs if r["op"] == "MeterUsage"]
        assert len(keys) == len(set(keys)), "two records for one {workload, dimension, hour}"
        assert all(r["hour"] % 3600 == 0 for r in recs)
    check("metering ledger: one record per {workload, dimension, hour}, hours rounded down", ledger)

    def clock():
        control(url, "/_emulator/clock", {"advance_secs": 7 * 3600})
        try:
            fails(c, cap, "meter_usage", "TimestampOutOfBoundsException", 400, ProductCode=METERED, Timestamp=now(),
                  UsageDimension="requests", UsageQuantity=1)
        finally:
            control(url, "/_emulator/clock", {"set_unix": now()})
    check("controllable clock: advancing 7 h puts a fresh timestamp out of the window", clock)

    def before_start():
        # The demo account's subscription to the metered product began 2026-01-01T00:00:00Z.
        new_year = 1767225600
        control(url, "/_emulator/clock", {"set_unix": new_year + 2 * 3600})
        try:
            e = fails(c, cap, "meter_usage", "TimestampOutOfBoundsException", 400, ProductCode=METERED,
                      Timestamp=new_year - 1800, UsageDimension="requests", UsageQuantity=1)
            assert "start of usage" in e.response["Error"]["Message"], e.response["Error"]
            ok(c, cap, "meter_usage", ProductCode=METERED, Timestamp=new_year + 1800, UsageDimension="requests",
               UsageQuantity=1)
        finally:
            control(url, "/_emulator/clock", {"set_unix": now()})
    check("MeterUsage TimestampOutOfBoundsException 400 (before the subscription began); after it ok", before_start)

    m, mcap = novalidate(env_dir, "meteringmarketplace")
    check("MeterUsage ValidationException 400 (UsageDimension missing, client validation off)",
          lambda: fails(m, mcap, "meter_usage", "ValidationException", 400, ProductCode=METERED, Timestamp=ts))
    check("MeterUsage ValidationException 400 (UsageQuantity negative, client validation off)",
          lambda: fails(m, mcap, "meter_usage", "ValidationException", 400, ProductCode=METERED, Timestamp=ts,
                        UsageDimension="requests", UsageQuantity=-1))
    check("MeterUsage SerializationException 400 (UsageQuantity is a string)",
          lambda: fails(m, mcap, "meter_usage", "SerializationException", 400, ProductCode=METERED, Timestamp=ts,
                        UsageDimension="requests", UsageQuantity="many"))

    # SaaS
    s, scap = client(env_dir, "seller-saas")
    rec = lambda **kw: dict({"Timestamp": ts, "Dimension": "users", "Quantity": 3, "CustomerAWSAccountId": ACCOUNT}, **kw)  # noqa: E731

    def batch():
        r = ok(s, scap, "batch_meter_usage", ProductCode=SAAS, UsageRecords=[rec()])
        assert r["Results"][0]["Status"] == "Success", r
        r2 = ok(s, scap, "batch_meter_usage", ProductCode=SAAS, UsageRecords=[rec(), rec(Quantity=4)])
        assert r2["Results"][0]["MeteringRecordId"] == r["Results"][0]["MeteringRecordId"]
        assert r2["Results"][1]["Status"] == "DuplicateRecord", r2
        r3 = ok(s, scap, "batch_meter_usage", ProductCode=SAAS,
                UsageRecords=[rec(CustomerAWSAccountId="444455556666")])
        assert r3["Results"][0]["Status"] == "CustomerNotSubscribed", r3
    check("BatchMeterUsage Success / DuplicateRecord / CustomerNotSubscribed", batch)
    check("BatchMeterUsage TimestampOutOfBoundsException 400 (25 h old)",
          lambda: fails(s, scap, "batch_meter_usage", "TimestampOutOfBoundsException", 400, ProductCode=SAAS,
                        UsageRecords=[rec(Timestamp=ts - 25 * 3600)]))
    def grace():
        import calendar
        t = time.gmtime()
        first = calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0))
        old = first - 3 * 86400  # three days into the previous month
        try:
            control(url, "/_emulator/clock", {"set_unix": first + 5 * 3600})
            r = ok(s, scap, "batch_meter_usage", ProductCode=SAAS, UsageRecords=[rec(Timestamp=old, Dimension="api_calls")])
            assert r["Results"][0]["Status"] == "Success", r
            control(url, "/_emulator/clock", {"set_unix": first + 7 * 3600})
            fails(s, scap, "batch_meter_usage", "TimestampOutOfBoundsException", 400, ProductCode=SAAS,
                  UsageRecords=[rec(Timestamp=old - 3600, Dimension="api_calls")])
        finally:
            control(url, "/_emulator/clock", {"set_unix": now()})
    check("BatchMeterUsage month-end grace: previous month accepted until 06:00 UTC on the 1st", grace)
    check("BatchMeterUsage InvalidCustomerIdentifierException 400",
          lambda: fails(s, scap, "batch_meter_usage", "InvalidCustomerIdentifierException", 400, ProductCode=SAAS,
                        UsageRecords=[rec(CustomerAWSAccountId="000000000000")]))
    check("BatchMeterUsage InvalidUsageDimensionException 400",
          lambda: fails(s, scap, "batch_meter_usage", "InvalidUsageDimensionException", 400, ProductCode=SAAS,
                        UsageRecords=[rec(Dimension="nope")]))
    check("BatchMeterUsage InvalidProductCodeException 400 (not the seller)",
          lambda: fails(c, cap, "batch_meter_usage", "InvalidProductCodeException", 400, ProductCode=SAAS,
                        UsageRecords=[rec()]))
    check("BatchMeterUsage InvalidLicenseException 400",
          lambda: fails(s, scap, "batch_meter_usage", "InvalidLicenseException", 400, ProductCode=SAAS,
                        UsageRecords=[rec(LicenseArn="arn:aws:license-manager::1:license:l-0")]))
    check("ResolveCustomer ok",
          lambda: ok(s, scap, "resolve_customer", RegistrationToken="demo-registration-token-0001")["CustomerAWSAccountId"] == ACCOUNT or 1 / 0)
    check("ResolveCustomer InvalidTokenException 400",
          lambda: fails(s, scap, "resolve_customer", "InvalidTokenException", 400, RegistrationToken="nope"))
    check("ResolveCustomer ExpiredTokenException 400",
          lambda: fails(s, scap, "resolve_customer", "ExpiredTokenException", 400,
                        RegistrationToken="demo-registration-token-expired"))
    return c, cap


def sigv4_checks(env_dir):
    c, cap = client(env_dir, "ecs-task")

    def corrupt(request, **_):
        a = request.headers["Authorization"]
        a = a if isinstance(a, str) else a.decode()
        last = a[-1]
        request.headers["Authorization"] = a[:-1] + ("0" if last != "0" else "1")
    c.meta.events.register("before-send.*.*", corrupt)
    check("SigV4: corrupted signature -> InvalidSignatureException 403",
          lambda: fails(c, cap, "register_usage", "InvalidSignatureException", 403, ProductCode=PAID, PublicKeyVersion=1))
    lm, lcap = client(env_dir, "ecs-task", service="license-manager")
    lm.meta.events.register("before-sign.*.*", lambda request, **_: request.headers.__setitem__(
        "X-Amz-Target", "AWSMPMeteringService.RegisterUsage"))
    check("SigV4: signing name license-manager on a metering call -> InvalidSignatureException 403",
          lambda: fails(lm, lcap, "get_license", "InvalidSignatureException", 403, LicenseArn=CONTRACT_LICENSE))


def license_checks(url, env_dir):
    c, cap = client(env_dir, "ecs-task", service="license-manager")
    want = lambda n=1: [{"Name": "Seats", "Unit": "Count", "Value": str(n)}]  # noqa: E731
    co = lambda **kw: dict(dict(ProductSKU=CONTRACT_SKU, CheckoutType="PROVISIONAL", KeyFingerprint=FINGERPRINT,  # noqa: E731
                                Entitlements=want(), ClientToken=os.urandom(8).hex()), **kw)
    state = {}

    def checkout():
        r = ok(c, cap, "checkout_license", **co())
        assert r["EntitlementsAllowed"] == [{"Name": "Seats", "Unit": "Count", "Value": "1"}], r
        state["token"] = r["LicenseConsumptionToken"]
    check("CheckoutLicense PROVISIONAL ok (SignedToken >= 4096 chars)", checkout)
    check("CheckoutLicense tier entitlement: only the purchased tier comes back",
          lambda: [e["Name"] for e in ok(c, cap, "checkout_license", **co(Entitlements=[
              {"Name": "BasicTier", "Unit": "None"}, {"Name": "PremiumTier", "Unit": "None"}]))["EntitlementsAllowed"]]
          == ["BasicTier"] or 1 / 0)
    check("CheckoutLicense NoEntitlementsAllowedException 400 (seats exhausted)",
          lambda: fails(c, cap, "checkout_license", "NoEntitlementsAllowedException", 400, **co(Entitlements=want(3))))
    check("CheckoutLicense NoEntitlementsAllowedException 400 (unit mismatch)",
          lambda: fails(c, cap, "checkout_license", "NoEntitlementsAllowedException", 400,
                        **co(Entitlements=[{"Name": "Seats", "Unit": "Bytes", "Value": "1"}])))
    check("CheckoutLicense ResourceNotFoundException 400 (wrong fingerprint)",
          lambda: fails(c, cap, "checkout_license", "ResourceNotFoundException", 400, **co(KeyFingerprint="aws:1:x")))
    check("CheckoutLicense ResourceNotFoundException 400 (unknown SKU)",
          lambda: fails(c, cap, "checkout_license", "ResourceNotFoundException", 400, **co(ProductSKU="prod-nope")))
    eu, eucap = client(env_dir, "ecs-task", service="license-manager", region="eu-west-1")

    def redirect():
        e = fails(eu, eucap, "checkout_license", "RedirectException", 308, **co())
        assert "us-east-1" in e.response["Error"].get("Location", "") or "us-east-1" in e.response.get("Location", ""), e.response
    check("CheckoutLicense RedirectException 308 (other region) with Location", redirect)

    def idempotent():
        args = co()
        a = ok(c, cap, "checkout_license", **args)
        b = ok(c, cap, "checkout_license", **args)
        assert a["LicenseConsumptionToken"] == b["LicenseConsumptionToken"]
        ok(c, cap, "check_in_license", LicenseConsumptionToken=a["LicenseConsumptionToken"])
    check("CheckoutLicense same ClientToken -> same checkout, no second seat", idempotent)
    def checkout_token_reuse():
        ok(c, cap, "checkout_license", **dict(co(ClientToken="ct-fixed"), Entitlements=[{"Name": "BasicTier", "Unit": "None"}],
                                              NodeId="a"))
        fails(c, cap, "checkout_license", "InvalidParameterValueException", 400, **dict(co(ClientToken="ct-fixed"), NodeId="b"))
    check("CheckoutLicense InvalidParameterValueException 400 (ClientToken reused, other request)", checkout_token_reuse)
    check("ExtendLicenseConsumption ok",
          lambda: ok(c, cap, "extend_license_consumption", LicenseConsumptionToken=state["token"]))
    check("ExtendLicenseConsumption ResourceNotFoundException 400",
          lambda: fails(c, cap, "extend_license_consumption", "ResourceNotFoundException", 400, LicenseConsumptionToken="nope"))
    check("CheckInLicense ok", lambda: ok(c, cap, "check_in_license", LicenseConsumptionToken=state["token"]))
    check("CheckInLicense ResourceNotFoundException 400 (already checked in)",
          lambda: fails(c, cap, "check_in_license", "ResourceNotFoundException", 400, LicenseConsumptionToken=state["token"]))

    def expiry():
        r = ok(c, cap, "checkout_license", **co())
        control(url, "/_emulator/clock", {"advance_secs": 61 * 60})
        try:
            fails(c, cap, "extend_license_consumption", "ResourceNotFoundException", 400,
                  LicenseConsumptionToken=r["LicenseConsumptionToken"])
            seats = control(url, "/_emulator/seats")
            seat = next(s for s in seats if s["consumption_token"] == r["LicenseConsumptionToken"])
            assert seat["state"] == "Expired", seat
        finally:
            control(url, "/_emulator/clock", {"set_unix": now()})
    check("PROVISIONAL checkout expires after 60 emulated minutes (seat ledger)", expiry)

    def perpetual():
        r = ok(c, cap, "checkout_license", **co(CheckoutType="PERPETUAL",
                                                Entitlements=[{"Name": "DataConsumption", "Unit": "Gigabytes", "Value": "10"}]))
        assert r["CheckoutType"] == "PERPETUAL"
        seat = next(s for s in control(url, "/_emulator/seats") if s["consumption_token"] == r["LicenseConsumptionToken"])
        assert seat["state"] == "Consumed", seat
    check("CheckoutLicense PERPETUAL draws down for good", perpetual)
    check("CheckoutLicense ValidationException 400 (CheckoutType not in enum, client validation off)",
          lambda: fails(*novalidate(env_dir), "checkout_license", "ValidationException", 400, **co(CheckoutType="SOMETIMES")))
    def injected(fault, code, status):
        control(url, "/_emulator/faults", {"op": "CheckoutLicense", "fault": fault})
        fails(c, cap, "checkout_license", code, status, injected=True, **co())
    for fault, code, status in [("Throttle", "RateLimitExceededException", 429),
                                ("InternalError", "ServerInternalException", 500),
                                ({"Status": [403, "AuthorizationException"]}, "AuthorizationException", 403),
                                ({"Status": [401, "AccessDeniedException"]}, "AccessDeniedException", 401),
                                ({"Status": [409, "ConflictException"]}, "ConflictException", 409)]:
        check(f"CheckoutLicense injected {code} {status} (Message member, modeled class)",
              lambda f=fault, k=code, st=status: injected(f, k, st))
    check("GetLicense ok", lambda: ok(c, cap, "get_license", LicenseArn=CONTRACT_LICENSE))
    check("GetLicense InvalidParameterValueException 400 (unknown license)",
          lambda: fails(c, cap, "get_license", "InvalidParameterValueException", 400,
                        LicenseArn="arn:aws:license-manager::294406891311:license:l-ffffffffffffffffffffffffffffffff"))
    check("ListReceivedLicenses ok", lambda: len(ok(c, cap, "list_received_licenses")["Licenses"]) == 2 or 1 / 0)
    check("ListReceivedLicenses filter ProductSKU miss -> empty",
          lambda: ok(c, cap, "list_received_licenses", Filters=[{"Name": "ProductSKU", "Values": ["x"]}])["Licenses"] == [] or 1 / 0)
    check("ListReceivedLicenses filter Fingerprint hit",
          lambda: len(ok(c, cap, "list_received_licenses", Filters=[{"Name": "Fingerprint", "Values": [FINGERPRINT]}])["Licenses"]) == 2 or 1 / 0)
    check("ListReceivedLicenses filter Status=AVAILABLE skips the expired license",
          lambda: [x["LicenseArn"] for x in ok(c, cap, "list_received_licenses", Filters=[{"Name": "Status", "Values": ["AVAILABLE"]}])["Licenses"]] == [CONTRACT_LICENSE] or 1 / 0)
    check("ListReceivedLicenses LicenseArns selects one",
          lambda: len(ok(c, cap, "list_received_licenses", LicenseArns=[CONTRACT_LICENSE])["Licenses"]) == 1 or 1 / 0)
    check("ListReceivedLicenses InvalidParameterValueException 400 (unknown filter)",
          lambda: fails(c, cap, "list_received_licenses", "InvalidParameterValueException", 400,
                        Filters=[{"Name": "Color", "Values": ["red"]}]))
    check("ListReceivedLicenses InvalidParameterValueException 400 (bad NextToken)",
          lambda: fails(c, cap, "list_received_licenses", "InvalidParameterValueException", 400, NextToken="garbage"))
    def pages():
        arns, token = [], None
        for _ in range(5):
            r = ok(c, cap, "list_received_licenses", MaxResults=1, **({"NextToken": token} if token else {}))
            assert len(r["Licenses"]) <= 1, r
            arns += [x["LicenseArn"] for x in r["Licenses"]]
            token = r.get("NextToken")
            if not token:
                break
        assert len(arns) == 2 and len(set(arns)) == 2, arns
    check("ListReceivedLicenses pagination (MaxResults=1, NextToken)", pages)

    # Errors that arise from the situation (emulator/src/services/license_situations.rs), not from injected faults.
    noiam, noiamcap = client(env_dir, "ecs-task-no-license-iam", service="license-manager")
    check("CheckoutLicense AuthorizationException 403 (role without license-manager actions)",
          lambda: fails(noiam, noiamcap, "checkout_license", "AuthorizationException", 403, **co()))
    pol, polcap = client(env_dir, "ecs-task-lm-consumption-policy", service="license-manager")
    check("ListReceivedLicenses AuthorizationException 403 (AWSLicenseManagerConsumptionPolicy lacks it)",
          lambda: fails(pol, polcap, "list_received_licenses", "AuthorizationException", 403))
    check("CheckoutLicense/CheckInLicense ok with AWSLicenseManagerConsumptionPolicy",
          lambda: ok(pol, polcap, "check_in_license",
                     LicenseConsumptionToken=ok(pol, polcap, "checkout_license", **co())["LicenseConsumptionToken"]))
    other, othercap = client(env_dir, "unsubscribed-task", service="license-manager")
    check("GetLicense AccessDeniedException 401 (another account's license)",
          lambda: fails(other, othercap, "get_license", "AccessDeniedException", 401, LicenseArn=CONTRACT_LICENSE))

    def foreign_token():
        tok = ok(c, cap, "checkout_license", **co())["LicenseConsumptionToken"]
        try:
            fails(other, othercap, "extend_license_consumption", "AccessDeniedException", 401, LicenseConsumptionToken=tok)
            fails(other, othercap, "check_in_license", "AccessDeniedException", 401, LicenseConsumptionToken=tok)
        finally:
            ok(c, cap, "check_in_license", LicenseConsumptionToken=tok)
    check("ExtendLicenseConsumption/CheckInLicense AccessDeniedException 401 (another account's token)", foreign_token)

    def racing():
        control(url, "/_emulator/checkout-commit", {"ms": 5000})
        first = co()
        tok = ok(c, cap, "checkout_license", **first)["LicenseConsumptionToken"]
        try:
            fails(c, cap, "checkout_license", "ConflictException", 409, **co())
            again = ok(c, cap, "checkout_license", **first)["LicenseConsumptionToken"]
            assert again == tok, "a retry with the same ClientToken is no conflict"
        finally:
            control(url, "/_emulator/checkout-commit", {"ms": None})
            ok(c, cap, "check_in_license", LicenseConsumptionToken=tok)
    check("CheckoutLicense ConflictException 409 (racing checkout while the first commits; same ClientToken ok)", racing)

    # Containers Anywhere: refresh token -> GetAccessToken (unsigned) -> STS -> CheckoutLicense.
    clean_env()
    env = load_env(env_dir, "onprem-license")
    refresh = open(env["AWS_WEB_IDENTITY_REFRESH_TOKEN_FILE"]).read()
    os.environ["AWS_ENDPOINT_URL"] = env["AWS_ENDPOINT_URL"]
    anon_cfg = NO_RETRY.merge(botocore.config.Config(signature_version=UNSIGNED))
    anon = boto3.Session().client("license-manager", region_name="us-east-1", config=anon_cfg)
    acap = Capture(anon)
    got = {}
    check("GetAccessToken unsigned ok",
          lambda: got.__setitem__("access", ok(anon, acap, "get_access_token", Token=refresh)["AccessToken"]))
    check("GetAccessToken AccessDeniedException 401 (bad refresh token)",
          lambda: fails(anon, acap, "get_access_token", "AccessDeniedException", 401, Token="not-a-token"))
    sts = boto3.Session().client("sts", region_name="us-east-1", config=anon_cfg)
    scap = Capture(sts)

    def assume():
        r = ok(sts, scap, "assume_role_with_web_identity", RoleArn=LICENSE_ROLE, RoleSessionName="onprem",
               WebIdentityToken=got["access"])
        cr = r["Credentials"]
        lm = boto3.Session(aws_access_key_id=cr["AccessKeyId"], aws_secret_access_key=cr["SecretAccessKey"],
                           aws_session_token=cr["SessionToken"]).client("license-manager", region_name="us-east-1", config=NO_RETRY)
        r = ok(lm, Capture(lm), "checkout_license", **co())
        ok(lm, Capture(lm), "check_in_license", LicenseConsumptionToken=r["LicenseConsumptionToken"])
    check("STS AssumeRoleWithWebIdentity with the access token, then CheckoutLicense/CheckInLicense", assume)
    check("STS AssumeRoleWithWebIdentity AccessDenied 403 (role not trusted by the token)",
          lambda: fails(sts, scap, "assume_role_with_web_identity", "AccessDenied", 403,
                        RoleArn="arn:aws:iam::111122223333:role/other", RoleSessionName="xx", WebIdentityToken=got["access"]))
    check("STS AssumeRoleWithWebIdentity InvalidIdentityToken 400",
          lambda: fails(sts, scap, "assume_role_with_web_identity", "InvalidIdentityToken", 400,
                        RoleArn=LICENSE_ROLE, RoleSessionName="xx", WebIdentityToken="a.b.c.d"))

    def expired_access():
        control(url, "/_emulator/clock", {"advance_secs": 3700})
        try:
            fails(sts, scap, "assume_role_with_web_identity", "ExpiredTokenException", 400,
                  RoleArn=LICENSE_ROLE, RoleSessionName="xx", WebIdentityToken=got["access"])
        finally:
            control(url, "/_emulator/clock", {"set_unix": now()})
    check("STS ExpiredTokenException 400 once the access token's hour has passed", expired_access)

    def no_leak():
        # Everything checked out before the 61-minute jump expired; everything after was checked in.
        out = [s for s in control(url, "/_emulator/seats") if s["state"] == "Out"]
        assert out == [], out
    check("seat ledger: no seat leaked", no_leak)


def novalidate(env_dir, service="license-manager"):
    client(env_dir, "ecs-task", service=service)  # sets the workload's environment
    cfg = NO_RETRY.merge(botocore.config.Config(parameter_validation=False))
    c2 = boto3.Session().client(service, region_name="us-east-1", config=cfg)
    return c2, Capture(c2)


def fault_checks(url, env_dir):
    c, cap = client(env_dir, "ecs-task")
    args = dict(ProductCode=PAID, PublicKeyVersion=1)

    def inject(fault, **kw):
        control(url, "/_emulator/faults", dict({"op": "RegisterUsage", "fault": fault}, **kw))

    def expect_exc(fault, exc_types):
        inject(fault)
        try:
            c.register_usage(**args)
        except exc_types:
            return
        raise AssertionError(f"{fault}: no client error")
    check("fault Throttle -> ThrottlingException 400",
          lambda: (inject("Throttle"), fails(c, cap, "register_usage", "ThrottlingException", 400, **args)))
    check("fault InternalError -> InternalServiceErrorException 500",
          lambda: (inject("InternalError"), fails(c, cap, "register_usage", "InternalServiceErrorException", 500, **args)))
    conn = (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)
    check("fault ConnectionReset -> botocore connection error", lambda: expect_exc("ConnectionReset", conn))
    check("fault CloseConnection -> botocore connection error", lambda: expect_exc("CloseConnection", conn))
    check("fault TruncatedBody -> botocore error", lambda: expect_exc("TruncatedBody", conn + (botocore.exceptions.ResponseStreamingError,)))
    def malformed():
        # botocore's JSON parser swallows an unparsable 200 body (returns no members), so the
        # visible symptom is a missing Signature, which the gate must treat as a failure.
        inject("MalformedJson")
        out = c.register_usage(**args)
        assert "Signature" not in out, out
    check("fault MalformedJson -> botocore returns no Signature", malformed)
    check("fault Hang -> botocore read timeout", lambda: expect_exc("Hang", (botocore.exceptions.ReadTimeoutError,)))
    check("fault WrongContentType: botocore ignores the content type",
          lambda: (inject("WrongContentType"), ok(c, cap, "register_usage", **args)))
    check("fault OversizedBody(1 MiB) still parses",
          lambda: (inject({"OversizedBody": 1 << 20}), ok(c, cap, "register_usage", **args)))
    def forged():
        inject({"Signature": "forged.by.the-test"})
        out = c.register_usage(**args)
        assert out.get("Signature") == "forged.by.the-test", out
    check("fault Signature(s): botocore returns exactly the forged Signature", forged)
    check("fault Status(503) -> 503 with the given code",
          lambda: (inject({"Status": [503, "ServiceUnavailable"]}), fails(c, cap, "register_usage", "ServiceUnavailable", 503, injected=True, **args)))

    def probability():
        inject("Throttle", probability=1.0)
        try:
            for _ in range(3):
                fails(c, cap, "register_usage", "ThrottlingException", 400, **args)
        finally:
            control(url, "/_emulator/faults/clear", {"op": "RegisterUsage"})
        ok(c, cap, "register_usage", **args)
    check("fault with probability 1.0 fires every call until cleared", probability)

    def quotas():
        control(url, "/_emulator/quotas", {"enabled": True})
        try:
            codes = []
            for _ in range(12):
                try:
                    c.register_usage(**args)
                    codes.append("ok")
                except botocore.exceptions.ClientError as e:
                    codes.append(e.response["Error"]["Code"])
            assert "ThrottlingException" in codes and codes[:5] == ["ok"] * 5, codes
        finally:
            control(url, "/_emulator/quotas", {"enabled": False})
    check("quota: RegisterUsage 5/s per account -> ThrottlingException", quotas)


def cli_checks(env_dir):
    clean_env()
    env = dict(os.environ)
    env.update(load_env(env_dir, "ecs-task"))

    def aws(*args):
        p = subprocess.run(["aws", *args, "--output", "json"], env=env, capture_output=True, text=True, timeout=60)
        return p.returncode, p.stdout, p.stderr
    def cli_meter():
        rc, out, err = aws("meteringmarketplace", "meter-usage", "--product-code", METERED, "--timestamp",
                           str(int(now())), "--usage-dimension", "requests", "--usage-quantity", "2")
        assert rc == 0 and "MeteringRecordId" in json.loads(out), (rc, out, err)
    check("AWS CLI meteringmarketplace meter-usage", cli_meter)

    def cli_get_license():
        rc, out, err = aws("license-manager", "get-license", "--license-arn", CONTRACT_LICENSE)
        assert rc == 0 and json.loads(out)["License"]["ProductSKU"] == CONTRACT_SKU, (rc, out, err)
    check("AWS CLI license-manager get-license", cli_get_license)

    def cli_error():
        rc, out, err = aws("meteringmarketplace", "register-usage", "--product-code", "nope", "--public-key-version", "1")
        assert rc != 0 and "InvalidProductCodeException" in err, (rc, err)
    check("AWS CLI surfaces InvalidProductCodeException", cli_error)


def moto_peer_checks(env_dir):
    """moto's server is an independent STS: the IRSA call must parse to the same members on both."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        FAILED.append("moto peer")
        print("FAIL moto peer: moto[server] is not installed (pip install 'moto[server]')")
        return
    import logging
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        env = load_env(env_dir, "eks-irsa")
        token = open(env["AWS_WEB_IDENTITY_TOKEN_FILE"]).read()
        args = dict(RoleArn=env["AWS_ROLE_ARN"], RoleSessionName="peer-check", WebIdentityToken=token)
        clean_env()
        cfg = NO_RETRY.merge(botocore.config.Config(signature_version=UNSIGNED))
        ours = boto3.Session().client("sts", region_name="us-east-1", config=cfg, endpoint_url=env["AWS_ENDPOINT_URL"])
        peer = boto3.Session().client("sts", region_name="us-east-1", config=cfg, endpoint_url=f"http://{host}:{port}")

        def same_members():
            a = ok(ours, Capture(ours), "assume_role_with_web_identity", **args)
            b = peer.assume_role_with_web_identity(**args)
            shape = lambda r: {k: sorted(v) if isinstance(v, dict) else None for k, v in r.items() if k != "ResponseMetadata"}  # noqa: E731
            ka, kb = shape(a), shape(b)
            for k in ("Credentials", "AssumedRoleUser"):
                assert ka[k] == kb[k], (k, ka[k], kb[k])
            # AWS sends PackedPolicySize only when a session policy was passed; moto always does.
            missing = set(kb) - set(ka) - {"PackedPolicySize"}
            assert not missing, f"moto answers members we do not: {missing}"
        check("moto peer: STS AssumeRoleWithWebIdentity (IRSA) parses to the same members as moto's", same_members)
    finally:
        server.stop()


# ---------- what the checks above leave out ----------

def b64url(part):
    import base64
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def token_checks(url, env_dir):
    """The RegisterUsage token against the product key, with nothing of ours in the verifier."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    c, cap = client(env_dir, "ecs-task")

    def claims_against_key():
        nonce = os.urandom(8).hex()
        sent = time.time()
        token = ok(c, cap, "register_usage", ProductCode=PAID, PublicKeyVersion=1, Nonce=nonce)["Signature"]
        header, payload, signature = token.split(".")
        assert json.loads(b64url(header)) == {"alg": "PS256", "typ": "JWT"}, b64url(header)
        with open(os.path.join(REPO, "testdata", "keys", "paid-v1.pub.pem"), "rb") as f:
            key = serialization.load_pem_public_key(f.read())
        # Raises on a bad signature: PS256 is RSASSA-PSS, SHA-256, MGF1-SHA-256, 32-byte salt (RFC 7518 §3.5).
        key.verify(b64url(signature), f"{header}.{payload}".encode(),
                   padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
        claims = json.loads(b64url(payload))
        assert claims["productCode"] == PAID and claims["publicKeyVersion"] == 1 and claims["nonce"] == nonce, claims
        assert abs(claims["iat"] - sent) < 60, claims
        try:
            key.verify(b64url(signature), f"{header}.{payload}x".encode(),
                       padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
        except Exception:  # noqa: BLE001 - cryptography's InvalidSignature
            return
        raise AssertionError("the signature also verifies over other bytes")
    check("RegisterUsage token: PS256 under the product's v1 key; claims echo code, version and nonce; iat now",
          claims_against_key)


def dry_run_refusal_checks(env_dir):
    """A dry run is refused for the reasons a real call would be."""
    c, cap = client(env_dir, "ecs-task")
    u, ucap = client(env_dir, "unsubscribed-task")
    ts = now()
    dry = dict(ProductCode=METERED, UsageDimension="requests", UsageQuantity=0, DryRun=True)
    check("MeterUsage DryRun CustomerNotEntitledException 400 (unsubscribed)",
          lambda: fails(u, ucap, "meter_usage", "CustomerNotEntitledException", 400, **dict(dry, Timestamp=ts)))
    check("MeterUsage DryRun InvalidUsageDimensionException 400 (bad dimension)",
          lambda: fails(c, cap, "meter_usage", "InvalidUsageDimensionException", 400,
                        **dict(dry, Timestamp=ts, UsageDimension="nope")))
    check("MeterUsage DryRun TimestampOutOfBoundsException 400 (7 h old)",
          lambda: fails(c, cap, "meter_usage", "TimestampOutOfBoundsException", 400, **dict(dry, Timestamp=ts - 7 * 3600)))


def clock_skew_checks(url, env_dir):
    c, cap = client(env_dir, "ecs-task")

    def skewed(secs):
        control(url, "/_emulator/clock", {"wall_skew_secs": secs})
        try:
            e = fails(c, cap, "register_usage", "InvalidSignatureException", 403, ProductCode=PAID, PublicKeyVersion=1)
            words = ("expired", "not yet current")
            assert any(w in e.response["Error"]["Message"] for w in words), e.response["Error"]
        finally:
            control(url, "/_emulator/clock", {"wall_skew_secs": 0})
        ok(c, cap, "register_usage", ProductCode=PAID, PublicKeyVersion=1)
    check("SigV4: service clock 10 min ahead -> InvalidSignatureException 403 (signature expired); in step -> ok",
          lambda: skewed(600))
    check("SigV4: service clock 10 min behind -> InvalidSignatureException 403; in step -> ok", lambda: skewed(-600))


def platform_checks(env_dir):
    """Credentials and metadata the container platforms serve, read by botocore's own providers."""
    def pod_identity():
        c, cap = client(env_dir, "eks-pod-identity")
        creds = boto3.Session().get_credentials()
        assert creds.method == "container-role" and creds.access_key.startswith("ASIA"), (creds.method, creds.access_key)
        # Signed with them: Metering authenticates the call and refuses the platform (modeled).
        fails(c, cap, "register_usage", "PlatformNotSupportedException", 400, ProductCode=PAID, PublicKeyVersion=1)
        lm, lcap = client(env_dir, "eks-pod-identity", service="license-manager")
        ok(lm, lcap, "get_license", LicenseArn=CONTRACT_LICENSE)
    check("EKS Pod Identity agent: botocore's container provider gets credentials; signed calls authenticate", pod_identity)

    def task_metadata():
        clean_env()
        env = load_env(env_dir, "ecs-task")
        fetch = botocore.utils.ContainerMetadataFetcher()
        task = fetch.retrieve_full_uri(env["ECS_CONTAINER_METADATA_URI_V4"] + "/task")
        assert task["TaskARN"].startswith("arn:aws:ecs:us-east-1:111122223333:task/"), task
        assert task["AvailabilityZone"].startswith("us-east-1"), task
        assert isinstance(task["Containers"], list) and task["Containers"], task
        own = fetch.retrieve_full_uri(env["ECS_CONTAINER_METADATA_URI_V4"])
        assert own["DockerId"] and own["DockerId"] in [x["DockerId"] for x in task["Containers"]], own
    check("ECS task metadata v4 (container and /task) through botocore's metadata fetcher", task_metadata)

    def imds_v2():
        clean_env()
        env = load_env(env_dir, "ec2-instance")
        os.environ.update(env)
        base = env["AWS_EC2_METADATA_SERVICE_ENDPOINT"].rstrip("/") + "/"
        region = botocore.utils.InstanceMetadataRegionFetcher(base_url=base).retrieve_region()
        assert region == "us-east-1", region
        os.environ.pop("AWS_REGION", None)
        os.environ.pop("AWS_DEFAULT_REGION", None)
        creds = boto3.Session().get_credentials()
        assert creds.method == "iam-role" and creds.access_key.startswith("ASIA"), (creds.method, creds.access_key)
        c = boto3.Session().client("meteringmarketplace", region_name=region, config=NO_RETRY)
        fails(c, Capture(c), "register_usage", "PlatformNotSupportedException", 400, ProductCode=PAID, PublicKeyVersion=1)
        ops = [r["op"] for r in control(env["AWS_ENDPOINT_URL"], "/_emulator/requests") if r.get("workload") == "ec2-instance"]
        assert "ImdsToken" in ops, ops
    check("IMDSv2 through botocore: token, region, instance-role credentials", imds_v2)


def extend_checks(url, env_dir):
    c, cap = client(env_dir, "ecs-task", service="license-manager")

    def resets_ttl():
        r = ok(c, cap, "checkout_license", ProductSKU=CONTRACT_SKU, CheckoutType="PROVISIONAL", KeyFingerprint=FINGERPRINT,
               Entitlements=[{"Name": "Seats", "Unit": "Count", "Value": "1"}], ClientToken=os.urandom(8).hex())
        tok = r["LicenseConsumptionToken"]
        try:
            control(url, "/_emulator/clock", {"advance_secs": 50 * 60})
            e1 = ok(c, cap, "extend_license_consumption", LicenseConsumptionToken=tok)["Expiration"]
            assert e1 > r["Expiration"], (r["Expiration"], e1)
            control(url, "/_emulator/clock", {"advance_secs": 50 * 60})
            # 100 minutes after the checkout, 50 after the extension: still out, and extendable again.
            e2 = ok(c, cap, "extend_license_consumption", LicenseConsumptionToken=tok)["Expiration"]
            assert e2 > e1, (e1, e2)
            seat = next(s for s in control(url, "/_emulator/seats") if s["consumption_token"] == tok)
            assert seat["state"] == "Out", seat
            ok(c, cap, "check_in_license", LicenseConsumptionToken=tok)
        finally:
            control(url, "/_emulator/clock", {"set_unix": now()})
    check("ExtendLicenseConsumption resets the 60-minute TTL (extended at 50 and 100 minutes, still out)", resets_ttl)


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def situations_world(started):
    license = lambda suffix, sku, begin, end: {  # noqa: E731
        "arn": f"arn:aws:license-manager::294406891311:license:l-{suffix * 32}", "product_sku": sku,
        "account": ACCOUNT, "begin": begin, "end": end,
        "entitlements": [{"name": "Seats", "unit": "Count", "max_count": 5}]}
    task = lambda wid, **kw: dict({"id": wid, "platform": "EcsFargate", "region": "us-east-1", "account": ACCOUNT,  # noqa: E731
                                   "credential": "EcsTaskRole", "inject_region_env": True}, **kw)
    return {
        "accounts": [{"id": ACCOUNT, "subscriptions": [WINDOW_PRODUCT]}],
        "products": [{"code": WINDOW_PRODUCT, "key_versions": [1], "dimensions": ["requests", "hits"]}],
        "workloads": [task("task"), task("late-task", started=iso(started))],
        "licenses": [license("a", "prod-offset-dates", *OFFSET_DATES), license("b", "prod-zoneless-dates", *ZONELESS_DATES)],
    }


WINDOW_PRODUCT = "conformance0window0product"
OFFSET_DATES = ("2026-01-01T00:00:00+00:00", "2099-12-31T23:59:59.500+05:30")
ZONELESS_DATES = ("2026-01-01T00:00:00", "2099-12-31T23:59:59")


def situation_checks(url, env_dir, agent, started):
    c, cap = client(env_dir, "task")
    ts = now()

    def boundaries():
        ok(c, cap, "meter_usage", ProductCode=WINDOW_PRODUCT, Timestamp=ts - (5 * 3600 + 59 * 60),
           UsageDimension="requests", UsageQuantity=1)
        fails(c, cap, "meter_usage", "TimestampOutOfBoundsException", 400, ProductCode=WINDOW_PRODUCT,
              Timestamp=ts - (6 * 3600 + 60), UsageDimension="hits", UsageQuantity=1)
        hours = {r["hour"] for r in control(url, "/_emulator/metering")}
        assert int(ts - (5 * 3600 + 59 * 60)) // 3600 * 3600 in hours, hours
    check("MeterUsage window: 5 h 59 m old accepted (its hour began over 6 h ago), 6 h 01 m old refused", boundaries)

    late, lcap = client(env_dir, "late-task")

    def before_start():
        e = fails(late, lcap, "meter_usage", "TimestampOutOfBoundsException", 400, ProductCode=WINDOW_PRODUCT,
                  Timestamp=started - 600, UsageDimension="requests", UsageQuantity=1)
        assert "start of usage" in e.response["Error"]["Message"], e.response["Error"]
        ok(late, lcap, "meter_usage", ProductCode=WINDOW_PRODUCT, Timestamp=started + 60, UsageDimension="requests",
           UsageQuantity=1)
    check("MeterUsage TimestampOutOfBoundsException 400 before the workload started; after it ok", before_start)

    lm, lmcap = client(env_dir, "task", service="license-manager")
    arn = lambda suffix: f"arn:aws:license-manager::294406891311:license:l-{suffix * 32}"  # noqa: E731

    def checkout_and_return(sku):
        r = ok(lm, lmcap, "checkout_license", ProductSKU=sku, CheckoutType="PROVISIONAL", KeyFingerprint=FINGERPRINT,
               Entitlements=[{"Name": "Seats", "Unit": "Count", "Value": "1"}], ClientToken=os.urandom(8).hex())
        ok(lm, lmcap, "check_in_license", LicenseConsumptionToken=r["LicenseConsumptionToken"])

    def offset_dates():
        got = ok(lm, lmcap, "get_license", LicenseArn=arn("a"))["License"]["Validity"]
        assert got == {"Begin": OFFSET_DATES[0], "End": OFFSET_DATES[1]}, got
        listed = ok(lm, lmcap, "list_received_licenses", LicenseArns=[arn("a")])["Licenses"][0]["Validity"]
        assert listed == got, listed
        checkout_and_return("prod-offset-dates")
    check(f"license dates with offsets and a fraction ({OFFSET_DATES[0]}, {OFFSET_DATES[1]}): within the model's "
          "pattern, carried as written; checkout ok", offset_dates)

    def zoneless_dates():
        # Outside the model's ISO8601DateTime pattern: served only because the world asks for it, so
        # a gate's refusal can be tested. botocore still hands the strings over; the validator flags them.
        out = lm.get_license(LicenseArn=arn("b"))
        assert out["License"]["Validity"] == {"Begin": ZONELESS_DATES[0], "End": ZONELESS_DATES[1]}, out["License"]
        try:
            validate_raw(lmcap)
        except AssertionError as e:
            assert "Validity.Begin" in str(e) and "does not match" in str(e), e
            return
        raise AssertionError("a zone-less date passed the model's pattern")
    check(f"zone-less license dates ({ZONELESS_DATES[0]}): served as written, flagged as outside the model's pattern",
          zoneless_dates)

    def relative_uri():
        clean_env()
        env = load_env(env_dir, "task")
        full = env.pop("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        env.pop("AWS_CONTAINER_AUTHORIZATION_TOKEN", None)
        relative = full.split(agent, 1)[1]
        assert relative.startswith("/v2/credentials/"), full
        env["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] = relative
        os.environ.update(env)
        # botocore resolves the relative URI against 169.254.170.2; the agent listens on loopback here.
        saved = botocore.utils.ContainerMetadataFetcher.IP_ADDRESS
        botocore.utils.ContainerMetadataFetcher.IP_ADDRESS = agent
        try:
            creds = boto3.Session().get_credentials()
            assert creds.method == "container-role" and creds.access_key.startswith("ASIA"), creds.method
            m = boto3.Session().client("meteringmarketplace", region_name="us-east-1", config=NO_RETRY)
            ok(m, Capture(m), "meter_usage", ProductCode=WINDOW_PRODUCT, Timestamp=ts, UsageDimension="hits",
               UsageQuantity=2)
        finally:
            botocore.utils.ContainerMetadataFetcher.IP_ADDRESS = saved
    check("ECS AWS_CONTAINER_CREDENTIALS_RELATIVE_URI on the agent's port (no token), then a signed call", relative_uri)


def variance_checks(url, env_dir):
    """An emulator started with --variance: botocore reads every form the seed draws, to the same values."""
    c, cap = client(env_dir, "ecs-task")
    lm, lcap = client(env_dir, "ecs-task", service="license-manager")
    irsa, icap = client(env_dir, "eks-irsa")

    def many():
        VARIANCE["on"] = True
        try:
            many_calls()
        finally:
            VARIANCE["on"] = False

    def many_calls():
        for i in range(12):
            nonce = f"v-{i}"
            token = ok(c, cap, "register_usage", ProductCode=PAID, PublicKeyVersion=1, Nonce=nonce)["Signature"]
            claims = json.loads(b64url(token.split(".")[1]))
            assert (claims.get("nonce") or claims.get("Nonce")) == nonce, claims
            fails(c, cap, "register_usage", "InvalidProductCodeException", 400, ProductCode="nope", PublicKeyVersion=1)
            fails(lm, lcap, "get_license", "InvalidParameterValueException", 400,
                  LicenseArn="arn:aws:license-manager::294406891311:license:l-ffffffffffffffffffffffffffffffff")
            r = ok(lm, lcap, "checkout_license", ProductSKU=CONTRACT_SKU, CheckoutType="PROVISIONAL", KeyFingerprint=FINGERPRINT,
                   Entitlements=[{"Name": "Seats", "Unit": "Count", "Value": "1"}], ClientToken=os.urandom(8).hex())
            assert r["Expiration"].endswith("Z"), r
            ok(lm, lcap, "check_in_license", LicenseConsumptionToken=r["LicenseConsumptionToken"])
            ok(irsa, icap, "register_usage", ProductCode=PAID, PublicKeyVersion=2)
    check("variance: botocore reads every drawn form of RegisterUsage, errors, CheckoutLicense and STS alike", many)


def errors_swept(urls):
    """(e) over every answer both emulators gave during the run, the CLI's included."""
    session = botocore.session.get_session()
    models = {op: session.get_service_model(svc).operation_model(op) for svc, ops in MODEL_OPS.items() for op in ops}

    def sweep():
        unlisted = {}
        for url in urls:
            for r in control(url, "/_emulator/requests"):
                op, code = r["op"], r.get("error_code")
                if code and op in models and not code_allowed(models[op], code):
                    unlisted[(op, code)] = unlisted.get((op, code), 0) + 1
        bad = {k: n - INJECTED.get(k, 0) for k, n in unlisted.items() if n > INJECTED.get(k, 0)}
        assert not bad, f"errors neither modeled for their operation nor listed in docs/emulator.md: {bad}"
    check("every error code answered is modeled for its operation or listed in docs/emulator.md", sweep)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary, env_dir, *extra):
    proc = subprocess.Popen([binary, "--env-dir", env_dir, *extra], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    assert line.startswith("mpgate-emulator listening on http://127.0.0.1:"), line
    return proc, line.rsplit(" ", 1)[1]


def main():
    binary = sys.argv[1]
    procs = []
    with tempfile.TemporaryDirectory() as env_dir, tempfile.TemporaryDirectory() as situations_dir, \
            tempfile.TemporaryDirectory() as varied_dir:
        try:
            proc, url = start(binary, env_dir)
            procs.append(proc)
            started = int(now()) - 2 * 3600
            world = os.path.join(situations_dir, "world.json")
            with open(world, "w") as f:
                json.dump(situations_world(started), f)
            agent = f"127.0.0.1:{free_port()}"
            proc2, url2 = start(binary, situations_dir, "--world", world, "--ecs-agent", agent)
            procs.append(proc2)
            proc3, url3 = start(binary, varied_dir, "--variance", "7")
            procs.append(proc3)
            metering_checks(url, env_dir)
            sigv4_checks(env_dir)
            license_checks(url, env_dir)
            fault_checks(url, env_dir)
            token_checks(url, env_dir)
            dry_run_refusal_checks(env_dir)
            clock_skew_checks(url, env_dir)
            platform_checks(env_dir)
            extend_checks(url, env_dir)
            situation_checks(url2, situations_dir, agent, started)
            variance_checks(url3, varied_dir)
            moto_peer_checks(env_dir)
            if subprocess.run(["which", "aws"], capture_output=True).returncode == 0:
                cli_checks(env_dir)
            else:
                FAILED.append("AWS CLI missing")
                print("FAIL AWS CLI not installed")
            errors_swept([url, url2, url3])
        finally:
            for p in procs:
                p.terminate()
                p.wait(timeout=10)
    print(f"conformance: {len(PASSED)} passed, {len(FAILED)} failed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
