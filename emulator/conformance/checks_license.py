"""License Manager, Containers Anywhere and STS checks."""
import json
import os
import subprocess
import time
import urllib.request

import boto3
import botocore
import botocore.config
import botocore.exceptions
import botocore.session
import botocore.utils
from botocore import UNSIGNED

from harness import *  # noqa: F401,F403 - the checks share the harness and its constants


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

    def relicense(**changes):
        with urllib.request.urlopen(f"{url}/_emulator/licenses") as r:
            lic = next(x for x in json.load(r) if x["arn"] == CONTRACT_LICENSE)
        lic.update(changes)
        req = urllib.request.Request(f"{url}/_emulator/license", data=json.dumps(lic).encode(), method="POST")
        urllib.request.urlopen(req).read()

    def consumed_globally():
        r = ok(eu, eucap, "checkout_license", **co())
        ok(eu, eucap, "check_in_license", LicenseConsumptionToken=r["LicenseConsumptionToken"])
    check("CheckoutLicense outside the home region ok (consumed globally, the default)", consumed_globally)

    def redirect(where):
        def run():
            relicense(outside_home_region="Redirect", redirect_location=where)
            try:
                e = fails(eu, eucap, "checkout_license", "RedirectException", 308, **co())
            finally:
                relicense(outside_home_region="Accept", redirect_location="Both")
            in_body = e.response["Error"].get("Location", "") + e.response.get("Location", "")
            in_header = e.response["ResponseMetadata"]["HTTPHeaders"].get("location", "")
            assert ("us-east-1" in in_body) == (where != "Header"), e.response
            assert ("us-east-1" in in_header) == (where != "Body"), e.response
        return run
    for where in ["Both", "Body", "Header"]:
        check(f"CheckoutLicense RedirectException 308 (other region, Location in {where})", redirect(where))

    def dated(style):
        def run():
            relicense(date_style=style)
            try:
                r = ok(c, cap, "checkout_license", **co())
                ok(c, cap, "extend_license_consumption", LicenseConsumptionToken=r["LicenseConsumptionToken"])
                ok(c, cap, "check_in_license", LicenseConsumptionToken=r["LicenseConsumptionToken"])
                v = ok(c, cap, "get_license", LicenseArn=CONTRACT_LICENSE)["License"]["Validity"]
            finally:
                relicense(date_style=None)
            assert v["Begin"] != "2026-01-01T00:00:00Z" or style == "Zulu", v
        return run
    # Every form the emulator writes must match the model's ISO8601DateTime pattern (checked by `ok`).
    for style in ["Zulu", "UtcOffset", "Fraction", {"Offset": 330}, {"Offset": -600}]:
        check(f"License Manager dates in style {style} match ISO8601DateTime", dated(style))

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
