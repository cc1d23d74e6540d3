"""Marketplace Metering, SigV4 and fault checks."""
import json
import os
import subprocess
import time

import boto3
import botocore
import botocore.config
import botocore.exceptions
import botocore.session
import botocore.utils
from botocore import UNSIGNED

from harness import *  # noqa: F401,F403 - the checks share the harness and its constants


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
