"""The Terraform in `infra/`: format, validation, `terraform test` on a mock provider, and a real apply.

The AWS provider comes from a local filesystem mirror (`terraform init -plugin-dir`), so nothing is
downloaded. Each test works on a copy of `infra/` in a temporary folder: `.terraform/`, the state and the
lock file never land in the repository. The apply test creates the output bucket on the session's moto
S3 server and reads it back with boto3; only the store module is applied (no IRSA inputs, no EKS).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

INFRA = Path(__file__).resolve().parents[2] / "infra"
PLUGIN_DIR = Path(os.environ.get("GPPSCALE_TF_PLUGIN_DIR", "/opt/tf-plugins"))
AWS_PROVIDER = PLUGIN_DIR / "registry.terraform.io" / "hashicorp" / "aws"
REGION = "us-east-1"


def _terraform() -> str:
    exe = shutil.which("terraform")
    if exe is None:
        pytest.skip("`terraform` is not on PATH")
    if not any(AWS_PROVIDER.glob("*/linux_amd64/terraform-provider-aws_*")):
        pytest.skip(f"no AWS provider in the local plugin mirror {AWS_PROVIDER} (set GPPSCALE_TF_PLUGIN_DIR)")
    return exe


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # A shared plugin cache would be written outside the temporary folder; the endpoint variables would
    # route the provider to moto without the root module's `s3_endpoint`, which is what is under test.
    for name in ("TF_PLUGIN_CACHE_DIR", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        env.pop(name, None)
    env.update(
        TF_IN_AUTOMATION="1",
        TF_INPUT="0",
        CHECKPOINT_DISABLE="1",  # no version check against HashiCorp's servers
        AWS_EC2_METADATA_DISABLED="true",
        AWS_MAX_ATTEMPTS="2",  # fail fast instead of retrying a misrouted call 25 times
    )
    return env


class Terraform:
    """Runs `terraform` in one working folder and fails the test with its output on a non-zero exit."""

    def __init__(self, exe: str, cwd: Path) -> None:
        self.exe, self.cwd = exe, cwd

    def run(self, *args: str, ok: Sequence[int] = (0,)) -> subprocess.CompletedProcess[str]:
        """Run ``terraform ARGS -no-color``; assert that the exit code is one of ``ok``."""
        proc = subprocess.run(
            [self.exe, *args, "-no-color"],
            check=False,
            capture_output=True,
            text=True,
            cwd=self.cwd,
            env=_env(),
            timeout=300,
        )
        assert proc.returncode in ok, (
            f"`terraform {' '.join(args)}` exited {proc.returncode} in {self.cwd}\n"
            f"--- stderr ---\n{proc.stderr}\n--- stdout (tail) ---\n{proc.stdout[-4000:]}"
        )
        return proc


@pytest.fixture
def tf(tmp_path: Path) -> Terraform:
    """`infra/` copied to a temporary folder (without local leftovers) and initialised from the mirror."""
    exe = _terraform()
    work = tmp_path / "infra"
    # A developer's local init, state or terraform.tfvars (auto-loaded) must not leak into the test.
    shutil.copytree(INFRA, work, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", "*.tfvars"))
    runner = Terraform(exe, work)
    runner.run("init", "-input=false", f"-plugin-dir={PLUGIN_DIR}")
    return runner


def test_fmt_and_validate(tf: Terraform) -> None:
    tf.run("fmt", "-check", "-recursive", "-diff")
    out = tf.run("validate").stdout
    assert "The configuration is valid" in out


def test_terraform_test_on_a_mock_provider(tf: Terraform) -> None:
    out = tf.run("test").stdout
    assert "0 failed" in out
    # Each test file ran and passed: a renamed or emptied file would not go unnoticed.
    for name in ("store", "workload_role", "eks", "root"):
        assert f"tests/{name}.tftest.hcl... pass" in out, out


def _s3(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION)


def _check_bucket(s3: Any, bucket: str) -> None:
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert [r["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in rules] == ["AES256"]
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    ownership = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    assert ownership == [{"ObjectOwnership": "BucketOwnerEnforced"}]

    lifecycle = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert set(lifecycle) == {
        "expire-scratch",
        "abort-incomplete-multipart-uploads",
        "expire-noncurrent-versions",
    }
    scratch = lifecycle["expire-scratch"]
    assert (scratch["Status"], scratch["Filter"]["Prefix"], scratch["Expiration"]["Days"]) == (
        "Enabled",
        "scratch/",
        7,
    )
    multipart = lifecycle["abort-incomplete-multipart-uploads"]
    assert multipart["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}

    (statement,) = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]
    assert (statement["Effect"], statement["Action"]) == ("Deny", "s3:*")
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


@pytest.mark.slow
def test_apply_and_destroy_on_a_real_s3_server(tf: Terraform, s3_endpoint: str) -> None:
    bucket = f"gppscale-tf-{uuid.uuid4().hex[:12]}"
    tf_vars = [
        "-var",
        f"region={REGION}",
        "-var",
        f"bucket_name={bucket}",
        "-var",
        f"s3_endpoint={s3_endpoint}",
    ]
    s3 = _s3(s3_endpoint)
    destroyed = False
    try:
        # About a minute: after writing the lifecycle rules, provider 5.100 reads them back until it has
        # seen them unchanged 10 times, 5 s apart (its guard against S3's eventual consistency).
        tf.run("apply", "-auto-approve", "-input=false", *tf_vars)
        _check_bucket(s3, bucket)

        outputs = json.loads(tf.run("output", "-json").stdout)
        assert outputs["bucket_name"]["value"] == bucket
        assert outputs["store_url"]["value"] == f"s3://{bucket}/runs/"
        # `terraform output -json` leaves out null outputs: no role without IRSA inputs, no cluster.
        assert "role_arn" not in outputs
        assert "cluster_name" not in outputs
        # What the provider reads back matches the configuration: a second plan has nothing to do (exit 0).
        tf.run("plan", "-detailed-exitcode", "-input=false", *tf_vars)

        # The plan above has just refreshed the state: no need to read everything back once more.
        tf.run("destroy", "-auto-approve", "-input=false", "-refresh=false", *tf_vars)
        destroyed = True
        assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    finally:
        if not destroyed:  # leave the session's moto server clean for later tests
            tf.run("destroy", "-auto-approve", "-input=false", *tf_vars, ok=(0, 1))
