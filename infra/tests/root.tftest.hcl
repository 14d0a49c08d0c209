# The root module's wiring, against a mock AWS provider: what is created for which inputs.

mock_provider "aws" {
  mock_resource "aws_s3_bucket" {
    defaults = {
      arn = "arn:aws:s3:::gppscale-test-output"
    }
  }

  # The provider still validates ARNs in the mock: give roles ARN-shaped values.
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::111122223333:role/mock"
    }
  }

  mock_resource "aws_eks_cluster" {
    defaults = {
      arn                   = "arn:aws:eks:us-east-1:111122223333:cluster/gppscale"
      endpoint              = "https://EXAMPLED539D4633E53DE1B71EXAMPLE.gr7.us-east-1.eks.amazonaws.com"
      certificate_authority = [{ data = "bW9jay1jYQ==" }]
      identity              = [{ oidc = [{ issuer = "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE" }] }]
    }
  }

  mock_resource "aws_iam_openid_connect_provider" {
    defaults = {
      arn = "arn:aws:iam::111122223333:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
    }
  }

  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }
}

variables {
  region      = "us-east-1"
  bucket_name = "gppscale-test-output"
}

run "by_default_only_the_store" {
  command = apply

  assert {
    condition     = length(module.eks) == 0 && output.cluster_name == null
    error_message = "No EKS cluster unless create_eks = true."
  }

  assert {
    condition     = length(module.workload_role) == 0 && output.role_arn == null
    error_message = "No IRSA role without an OIDC provider (or create_eks)."
  }

  assert {
    condition     = output.bucket_name == "gppscale-test-output" && output.store_url == "s3://gppscale-test-output/runs/"
    error_message = "The store outputs must name the bucket and the runs prefix."
  }
}

run "irsa_inputs_add_the_role" {
  command = apply

  variables {
    oidc_provider_arn = "arn:aws:iam::111122223333:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE"
    oidc_provider_url = "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE"
  }

  assert {
    condition     = length(module.eks) == 0 && output.role_arn != null
    error_message = "IRSA inputs must create the role, and no cluster."
  }

  assert {
    condition = jsondecode(module.workload_role[0].trust_policy_json).Statement[0].Condition.StringLike == {
      "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE:sub" = "system:serviceaccount:gppscale:*"
    }
    error_message = "By default any ServiceAccount of the gppscale namespace (one per release) may assume the role."
  }

  assert {
    condition = toset(flatten([
      for s in jsondecode(module.workload_role[0].policy_json).Statement : s.Resource
    ])) == toset(["arn:aws:s3:::gppscale-test-output", "arn:aws:s3:::gppscale-test-output/*"])
    error_message = "The role's policy must name only the store's bucket and bucket/*."
  }
}

run "create_eks_adds_the_cluster_and_its_oidc_provider_for_the_role" {
  command = apply

  variables {
    create_eks = true
    subnet_ids = ["subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"]
  }

  assert {
    condition     = length(module.eks) == 1 && output.cluster_name == "gppscale"
    error_message = "create_eks = true must create the cluster."
  }

  assert {
    condition     = output.role_arn != null && output.oidc_provider_arn == "arn:aws:iam::111122223333:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
    error_message = "With create_eks the role must trust the new cluster's OIDC provider."
  }

  assert {
    condition     = module.eks[0].node_group_names == { cpu = "gppscale-cpu", gpu = "gppscale-gpu" }
    error_message = "The cluster must have a cpu and a gpu node group (their settings: tests/eks.tftest.hcl)."
  }
}

run "half_the_irsa_inputs_is_refused" {
  command = plan

  variables {
    oidc_provider_url = "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE"
  }

  expect_failures = [var.oidc_provider_url]
}
