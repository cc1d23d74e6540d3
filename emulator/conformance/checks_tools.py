"""Clients beyond boto3: the AWS CLI, and moto as an independent STS."""
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
