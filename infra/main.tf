# gppscale on AWS: the output bucket, the IRSA role of the runner and Dask pods, and optionally an EKS
# cluster with CPU and GPU node groups. See README.md for inputs, outputs and how they feed the Helm chart.

locals {
  custom_endpoint = var.s3_endpoint != null
  irsa            = var.create_eks || var.oidc_provider_arn != null
}

provider "aws" {
  region = var.region

  # Plain AWS leaves these at the provider defaults (null/false).
  s3_use_path_style           = local.custom_endpoint
  skip_credentials_validation = local.custom_endpoint
  skip_requesting_account_id  = local.custom_endpoint
  skip_metadata_api_check     = local.custom_endpoint ? "true" : null

  endpoints {
    s3 = var.s3_endpoint
  }

  default_tags {
    tags = merge({ project = "gppscale" }, var.tags)
  }
}

module "store" {
  source = "./modules/store"

  bucket_name                        = var.bucket_name
  kms_key_arn                        = var.kms_key_arn
  scratch_prefix                     = var.scratch_prefix
  scratch_expiration_days            = var.scratch_expiration_days
  abort_incomplete_multipart_days    = var.abort_incomplete_multipart_days
  noncurrent_version_expiration_days = var.noncurrent_version_expiration_days
  force_destroy                      = var.force_destroy
}

module "eks" {
  source = "./modules/eks"
  count  = var.create_eks ? 1 : 0

  cluster_name       = var.name_prefix
  kubernetes_version = var.kubernetes_version
  subnet_ids         = var.subnet_ids
  node_subnet_ids    = var.node_subnet_ids
  cpu_instance_types = var.cpu_instance_types
  cpu_min_size       = var.cpu_node_sizes.min
  cpu_desired_size   = var.cpu_node_sizes.desired
  cpu_max_size       = var.cpu_node_sizes.max
  gpu_instance_types = var.gpu_instance_types
  gpu_ami_type       = var.gpu_ami_type
  gpu_min_size       = var.gpu_node_sizes.min
  gpu_desired_size   = var.gpu_node_sizes.desired
  gpu_max_size       = var.gpu_node_sizes.max
}

module "workload_role" {
  source = "./modules/workload_role"
  count  = local.irsa ? 1 : 0

  name              = "${var.name_prefix}-workload"
  bucket_arn        = module.store.bucket_arn
  prefixes          = var.role_prefixes
  kms_key_arn       = var.kms_key_arn
  oidc_provider_arn = var.create_eks ? module.eks[0].oidc_provider_arn : var.oidc_provider_arn
  oidc_provider_url = var.create_eks ? module.eks[0].oidc_provider_url : var.oidc_provider_url
  namespace         = var.namespace
  service_account   = var.service_account
}
