"""The conformance suite's harness: the check runner, botocore shape validation of raw answers (c),
the modeled-or-listed rule for error codes (e), clients per workload, and the emulator's control API.
The checks themselves are in the checks_*.py files beside it; run.py runs them."""
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



def novalidate(env_dir, service="license-manager"):
    client(env_dir, "ecs-task", service=service)  # sets the workload's environment
    cfg = NO_RETRY.merge(botocore.config.Config(parameter_validation=False))
    c2 = boto3.Session().client(service, region_name="us-east-1", config=cfg)
    return c2, Capture(c2)

def b64url(part):
    import base64
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

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
