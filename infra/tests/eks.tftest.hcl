# The EKS module on its own, against a mock AWS provider with realistic computed values.

mock_provider "aws" {
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

  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }
}

variables {
  cluster_name = "gppscale"
  subnet_ids   = ["subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"]
}

run "a_cpu_pool_and_a_tainted_gpu_pool_that_scales_to_zero" {
  command = apply

  module {
    source = "./modules/eks"
  }

  assert {
    condition     = keys(aws_eks_node_group.this) == ["cpu", "gpu"]
    error_message = "There must be exactly a cpu and a gpu node group."
  }

  assert {
    condition = (
      aws_eks_node_group.this["gpu"].ami_type == "AL2023_x86_64_NVIDIA"
      && aws_eks_node_group.this["gpu"].instance_types == tolist(["g5.xlarge"])
      && aws_eks_node_group.this["gpu"].labels == tomap({ "gppscale/pool" = "gpu", "nvidia.com/gpu.present" = "true" })
      && aws_eks_node_group.this["gpu"].scaling_config[0].min_size == 0
    )
    error_message = "The gpu group must use the NVIDIA AMI, carry gppscale/pool=gpu (and the chart's nvidia.com/gpu.present=true) and have min size 0."
  }

  assert {
    condition = [
      for t in aws_eks_node_group.this["gpu"].taint : [t.key, t.value, t.effect]
    ] == [["nvidia.com/gpu", "present", "NO_SCHEDULE"]]
    error_message = "The gpu group must carry the taint nvidia.com/gpu=present:NoSchedule, and only it."
  }

  assert {
    condition = (
      length(aws_eks_node_group.this["cpu"].taint) == 0
      && aws_eks_node_group.this["cpu"].ami_type == "AL2023_x86_64_STANDARD"
      && aws_eks_node_group.this["cpu"].labels == tomap({ "gppscale/pool" = "cpu" })
    )
    error_message = "The cpu group must be untainted, on the standard AMI, with gppscale/pool=cpu."
  }

  assert {
    condition = (
      aws_iam_openid_connect_provider.this.url == "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
      && aws_iam_openid_connect_provider.this.client_id_list == toset(["sts.amazonaws.com"])
      && output.oidc_provider_url == "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
    )
    error_message = "The cluster's issuer must be registered as an IAM OIDC provider for sts.amazonaws.com."
  }

  assert {
    condition = toset([for a in aws_iam_role_policy_attachment.node : a.policy_arn]) == toset([
      "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
      "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
      "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
    ])
    error_message = "Nodes must get exactly the three AWS-managed worker policies."
  }
}

run "gpu_sizes_are_checked" {
  command = plan

  module {
    source = "./modules/eks"
  }

  variables {
    gpu_min_size     = 2
    gpu_desired_size = 1
  }

  expect_failures = [aws_eks_node_group.this]
}

run "gpu_ami_type_is_checked" {
  command = plan

  module {
    source = "./modules/eks"
  }

  variables {
    gpu_ami_type = "AL2023_x86_64_STANDARD"
  }

  expect_failures = [var.gpu_ami_type]
}
