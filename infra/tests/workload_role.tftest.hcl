# The IRSA role on its own, against a mock AWS provider: who may assume it, and what it may touch.

mock_provider "aws" {}

variables {
  name              = "gppscale-workload"
  bucket_arn        = "arn:aws:s3:::gppscale-test-output"
  oidc_provider_arn = "arn:aws:iam::111122223333:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
  oidc_provider_url = "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
  namespace         = "gppscale"
  service_account   = "gppscale"
}

run "trusts_one_service_account_and_touches_only_the_bucket" {
  command = apply

  module {
    source = "./modules/workload_role"
  }

  assert {
    condition = jsondecode(aws_iam_role.this.assume_role_policy).Statement == [
      {
        Sid       = "ServiceAccountWebIdentity"
        Effect    = "Allow"
        Principal = { Federated = var.oidc_provider_arn }
        Action    = "sts:AssumeRoleWithWebIdentity"
        Condition = {
          StringEquals = {
            "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE:sub" = "system:serviceaccount:gppscale:gppscale"
            "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE:aud" = "sts.amazonaws.com"
          }
        }
      },
    ]
    error_message = "Only the gppscale/gppscale ServiceAccount, through the cluster's OIDC provider, may assume the role."
  }

  assert {
    condition = toset(flatten([
      for s in jsondecode(aws_iam_role_policy.bucket.policy).Statement : s.Resource
    ])) == toset(["arn:aws:s3:::gppscale-test-output", "arn:aws:s3:::gppscale-test-output/*"])
    error_message = "The policy's resources must be the bucket and bucket/* only."
  }

  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_role_policy.bucket.policy).Statement :
      s.Effect == "Allow" && alltrue([for a in s.Action : startswith(a, "s3:") && !strcontains(a, "*")])
    ])
    error_message = "The policy must allow named s3: actions only (no wildcards)."
  }

  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.bucket.policy).Statement : s.Sid => s.Resource
      } == {
      ListTheBucket    = ["arn:aws:s3:::gppscale-test-output"]
      ReadWriteObjects = ["arn:aws:s3:::gppscale-test-output/*"]
    }
    error_message = "Bucket-level actions must name the bucket, object actions bucket/*."
  }

  assert {
    condition = contains(
      [for s in jsondecode(aws_iam_role_policy.bucket.policy).Statement : s.Action if s.Sid == "ReadWriteObjects"][0],
      "s3:AbortMultipartUpload",
    ) && !can([for s in jsondecode(aws_iam_role_policy.bucket.policy).Statement : s.Condition])
    error_message = "Object access must include multipart upload clean-up; no conditions without prefixes."
  }

  assert {
    condition     = output.role_arn == aws_iam_role.this.arn
    error_message = "role_arn must be the role's ARN."
  }
}

run "prefixes_and_a_kms_key_narrow_and_extend_the_policy" {
  command = apply

  module {
    source = "./modules/workload_role"
  }

  variables {
    prefixes    = ["runs/", "scratch/"]
    kms_key_arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
  }

  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.bucket.policy).Statement : s.Sid => s.Resource
      } == {
      ListTheBucket    = ["arn:aws:s3:::gppscale-test-output"]
      ReadWriteObjects = ["arn:aws:s3:::gppscale-test-output/runs/*", "arn:aws:s3:::gppscale-test-output/scratch/*"]
      UseTheBucketKey  = ["arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"]
    }
    error_message = "With prefixes, objects must be limited to them; with a KMS key, only that key is added."
  }

  assert {
    condition = [
      for s in jsondecode(aws_iam_role_policy.bucket.policy).Statement : s.Condition if s.Sid == "ListTheBucket"
      ] == [
      { StringLike = { "s3:prefix" = ["runs/", "scratch/", "runs/*", "scratch/*"] } },
    ]
    error_message = "With prefixes, listing must be limited to them."
  }
}

run "a_service_account_pattern_uses_string_like" {
  command = apply

  module {
    source = "./modules/workload_role"
  }

  variables {
    service_account = "*"
  }

  assert {
    condition = jsondecode(aws_iam_role.this.assume_role_policy).Statement[0].Condition == {
      StringEquals = { "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE:aud" = "sts.amazonaws.com" }
      StringLike   = { "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE:sub" = "system:serviceaccount:gppscale:*" }
    }
    error_message = "A pattern must match the ServiceAccount with StringLike, still within the namespace, audience STS."
  }
}

run "a_key_arn_is_not_a_bucket_arn" {
  command = plan

  module {
    source = "./modules/workload_role"
  }

  variables {
    bucket_arn = "arn:aws:s3:::gppscale-test-output/*"
  }

  expect_failures = [var.bucket_arn]
}
