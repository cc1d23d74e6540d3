"""What the checks of the other files leave out: the token against the product key, dry-run
refusals, SigV4 clock skew, the container platforms through botocore's own providers, TTL resets, a
second emulator with a world of its own (window boundaries, usage before a workload's start, license
dates in each form, the ECS relative URI), a third in variance mode, and the sweep of every answer's
error code."""
import json
import os
import re
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
            assert re.search(r"(Z|[+-]\d\d:\d\d)$", r["Expiration"]), r  # Z or an offset, as the model allows
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
