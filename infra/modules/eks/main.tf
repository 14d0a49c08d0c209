# An EKS cluster for gppscale runs: a CPU node group for the runner, the Dask scheduler and CPU workers,
# a GPU node group (tainted, so only pods that tolerate it land there) that can scale to zero, and the IAM
# OIDC provider that IRSA roles trust. Networking (VPC, subnets, NAT) is an input, not created here.

data "aws_partition" "current" {}

locals {
  node_subnet_ids = coalesce(var.node_subnet_ids, var.subnet_ids)
  policy_prefix   = "arn:${data.aws_partition.current.partition}:iam::aws:policy"
  node_policies   = toset(["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"])
  node_groups = {
    cpu = {
      ami_type       = "AL2023_x86_64_STANDARD"
      capacity_type  = var.cpu_capacity_type
      instance_types = var.cpu_instance_types
      disk_size      = var.cpu_disk_size_gib
      min_size       = var.cpu_min_size
      desired_size   = var.cpu_desired_size
      max_size       = var.cpu_max_size
      labels         = { "gppscale/pool" = "cpu" }
      taints         = []
    }
    gpu = {
      ami_type       = var.gpu_ami_type
      capacity_type  = var.gpu_capacity_type
      instance_types = var.gpu_instance_types
      disk_size      = var.gpu_disk_size_gib
      min_size       = var.gpu_min_size
      desired_size   = var.gpu_desired_size
      max_size       = var.gpu_max_size
      # nvidia.com/gpu.present is what GPU feature discovery would set, and what the chart's
      # values-gpu.yaml selects: set here, GPU workers find these nodes without installing it.
      labels = { "gppscale/pool" = "gpu", "nvidia.com/gpu.present" = "true" }
      # Keeps CPU pods off the expensive nodes; the chart's GPU workers tolerate it.
      taints = [{ key = "nvidia.com/gpu", value = "present", effect = "NO_SCHEDULE" }]
    }
  }
}

resource "aws_iam_role" "cluster" {
  name = "${var.cluster_name}-cluster"
  tags = var.tags
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect    = "Allow"
        Principal = { Service = "eks.amazonaws.com" }
        Action    = ["sts:AssumeRole", "sts:TagSession"]
      },
    ]
  })
}

resource "aws_iam_role_policy_attachment" "cluster" {
  role       = aws_iam_role.cluster.name
  policy_arn = "${local.policy_prefix}/AmazonEKSClusterPolicy"
}

resource "aws_eks_cluster" "this" {
  name                      = var.cluster_name
  version                   = var.kubernetes_version
  role_arn                  = aws_iam_role.cluster.arn
  enabled_cluster_log_types = var.enabled_cluster_log_types
  tags                      = var.tags

  vpc_config {
    subnet_ids              = var.subnet_ids
    endpoint_private_access = true
    endpoint_public_access  = var.endpoint_public_access
    public_access_cidrs     = var.endpoint_public_access ? var.public_access_cidrs : null
  }

  access_config {
    # Access entries (API) for new grants; the creator of the cluster gets cluster-admin to start with.
    authentication_mode                         = "API_AND_CONFIG_MAP"
    bootstrap_cluster_creator_admin_permissions = true
  }

  # The role must hold its policy before the control plane is created, and while it is deleted.
  depends_on = [aws_iam_role_policy_attachment.cluster]
}

resource "aws_iam_openid_connect_provider" "this" {
  url            = aws_eks_cluster.this.identity[0].oidc[0].issuer
  client_id_list = ["sts.amazonaws.com"]
  tags           = var.tags
}

resource "aws_iam_role" "node" {
  name = "${var.cluster_name}-node"
  tags = var.tags
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect    = "Allow"
        Principal = { Service = "ec2.amazonaws.com" }
        Action    = "sts:AssumeRole"
      },
    ]
  })
}

resource "aws_iam_role_policy_attachment" "node" {
  for_each   = local.node_policies
  role       = aws_iam_role.node.name
  policy_arn = "${local.policy_prefix}/${each.key}"
}

resource "aws_eks_node_group" "this" {
  for_each = local.node_groups

  cluster_name    = aws_eks_cluster.this.name
  node_group_name = "${var.cluster_name}-${each.key}"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = local.node_subnet_ids
  ami_type        = each.value.ami_type
  capacity_type   = each.value.capacity_type
  instance_types  = each.value.instance_types
  disk_size       = each.value.disk_size
  tags            = var.tags

  labels = each.value.labels

  dynamic "taint" {
    for_each = each.value.taints
    content {
      key    = taint.value.key
      value  = taint.value.value
      effect = taint.value.effect
    }
  }

  scaling_config {
    min_size     = each.value.min_size
    desired_size = each.value.desired_size
    max_size     = each.value.max_size
  }

  update_config {
    max_unavailable = 1
  }

  lifecycle {
    # The cluster autoscaler owns the node count once the group exists.
    ignore_changes = [scaling_config[0].desired_size]

    precondition {
      condition     = 0 <= each.value.min_size && each.value.min_size <= each.value.desired_size && each.value.desired_size <= each.value.max_size && each.value.max_size >= 1
      error_message = "Node group ${each.key}: sizes must satisfy 0 <= min (${each.value.min_size}) <= desired (${each.value.desired_size}) <= max (${each.value.max_size}), max >= 1."
    }
  }

  # Nodes need their policies to join, and the CNI policy until they are gone.
  depends_on = [aws_iam_role_policy_attachment.node]
}
