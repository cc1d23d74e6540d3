#!/usr/bin/env python3
"""boto3 smoke test: an independent SigV4 signer and credential chain against the emulator binary.

Usage: python3 emulator/tests/boto3_smoke.py /path/to/mpgate-emulator
Starts the binary with --env-dir, takes each workload's environment from <dir>/<workload>.env
(exactly what a container would see), and calls RegisterUsage through boto3.

The full conformance suite (every operation and error, shape validation, faults, AWS CLI, moto peer)
is emulator/conformance/run.py; this file stays as the quick RegisterUsage smoke test.
"""
import os
import subprocess
import sys
import tempfile

import boto3
import botocore.config
import botocore.exceptions

PAID = "8f3kq2demopaid0mpgate01"


def load_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            env[k] = v
    return env


def client_for(env_dir, workload, region=None):
    # Start from a clean AWS environment: this machine sets AWS_CA_BUNDLE and friends globally.
    for k in list(os.environ):
        if k.startswith("AWS_") or k.startswith("ECS_"):
            del os.environ[k]
    os.environ["AWS_CONFIG_FILE"] = "/dev/null"
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
    os.environ.update(load_env(os.path.join(env_dir, workload + ".env")))
    session = boto3.Session()
    return session.client(
        "meteringmarketplace",
        region_name=region or os.environ.get("AWS_REGION", "us-east-1"),
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )


def error_code(fn):
    try:
        fn()
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
    return None


def main():
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as env_dir:
        proc = subprocess.Popen(
            [binary, "--env-dir", env_dir], stdout=subprocess.PIPE, text=True
        )
        try:
            line = proc.stdout.readline().strip()
            assert line.startswith("mpgate-emulator listening on http://127.0.0.1:"), line

            c = client_for(env_dir, "ecs-task")
            r = c.register_usage(ProductCode=PAID, PublicKeyVersion=1, Nonce="n-1")
            assert len(r["Signature"].split(".")) == 3, r
            print("ok: ecs-task RegisterUsage ->", r["Signature"][:24] + "...")

            c = client_for(env_dir, "unsubscribed-task")
            code = error_code(lambda: c.register_usage(ProductCode=PAID, PublicKeyVersion=1))
            assert code == "CustomerNotEntitledException", code
            print("ok: unsubscribed-task ->", code)

            c = client_for(env_dir, "laptop")
            code = error_code(lambda: c.register_usage(ProductCode=PAID, PublicKeyVersion=1))
            assert code == "PlatformNotSupportedException", code
            print("ok: laptop ->", code)

            c = client_for(env_dir, "ecs-task", region="eu-west-1")
            code = error_code(lambda: c.register_usage(ProductCode=PAID, PublicKeyVersion=1))
            assert code == "InvalidRegionException", code
            print("ok: ecs-task signing eu-west-1 ->", code)

            c = client_for(env_dir, "eks-irsa")
            r = c.register_usage(ProductCode=PAID, PublicKeyVersion=2)
            assert len(r["Signature"].split(".")) == 3, r
            print("ok: eks-irsa (STS web identity) RegisterUsage")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print("boto3 smoke test passed")


if __name__ == "__main__":
    main()
