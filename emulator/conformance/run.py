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
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from checks_license import license_checks  # noqa: E402
from checks_metering import fault_checks, metering_checks, sigv4_checks  # noqa: E402
from checks_situations import (  # noqa: E402
    clock_skew_checks, dry_run_refusal_checks, errors_swept, extend_checks, platform_checks, situation_checks,
    situations_world, token_checks, variance_checks)
from checks_tools import cli_checks, moto_peer_checks  # noqa: E402
from harness import FAILED, PASSED, now, start, free_port  # noqa: E402
import json  # noqa: E402


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
