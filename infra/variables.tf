variable "region" {
  description = "AWS region of the bucket, the role's cluster and (with create_eks) the cluster."
  type        = string
}

variable "bucket_name" {
  description = "Name of the output bucket (globally unique)."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the names of the IAM role and the EKS cluster."
  type        = string
  default     = "gppscale"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,37}$", var.name_prefix))
    error_message = "name_prefix must be 1-38 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "tags" {
  description = "Tags for every resource (provider default_tags, with project = \"gppscale\")."
  type        = map(string)
  default     = {}
}

variable "run_prefix" {
  description = "Key prefix of the runs in the bucket; the run spec's `output.store` is s3://BUCKET/RUN_PREFIX/NAME."
  type        = string
  default     = "runs/"

  validation {
    condition     = length(var.run_prefix) > 1 && endswith(var.run_prefix, "/") && !startswith(var.run_prefix, "/")
    error_message = "run_prefix must be a key prefix ending with \"/\", without a leading \"/\", such as \"runs/\"."
  }
}

# --- store ---

variable "kms_key_arn" {
  description = "KMS key ARN for SSE-KMS on the bucket (the role may then use the key); null keeps SSE-S3 (AES256)."
  type        = string
  default     = null
}

variable "scratch_prefix" {
  description = "Key prefix of intermediate data that expires after scratch_expiration_days."
  type        = string
  default     = "scratch/"
}

variable "scratch_expiration_days" {
  description = "Days after which objects under scratch_prefix expire."
  type        = number
  default     = 7
}

variable "abort_incomplete_multipart_days" {
  description = "Days after which incomplete multipart uploads are aborted."
  type        = number
  default     = 7
}

variable "noncurrent_version_expiration_days" {
  description = "Days after which overwritten or deleted object versions are removed; null keeps them."
  type        = number
  default     = 30
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the bucket with everything in it. Keep false for real data."
  type        = bool
  default     = false
}

# --- workload role (IRSA) ---

variable "oidc_provider_arn" {
  description = "ARN of an existing cluster's IAM OIDC provider; with it (or create_eks) the IRSA role is created."
  type        = string
  default     = null
}

variable "oidc_provider_url" {
  description = "Issuer URL of that OIDC provider (needed with oidc_provider_arn)."
  type        = string
  default     = null

  validation {
    condition     = (var.oidc_provider_url == null) == (var.oidc_provider_arn == null)
    error_message = "Give oidc_provider_arn and oidc_provider_url together, or neither."
  }
}

variable "namespace" {
  description = "Kubernetes namespace of the gppscale releases; keep it for gppscale alone."
  type        = string
  default     = "gppscale"
}

variable "service_account" {
  description = <<-EOT
    ServiceAccount name, or pattern with "*", that may assume the role. The chart makes one ServiceAccount
    per release (= per run), named after the release, hence "*": any ServiceAccount of `namespace`. Give an
    exact name when every release uses one fixed ServiceAccount.
  EOT
  type        = string
  default     = "*"
}

variable "role_prefixes" {
  description = "Key prefixes the role is limited to (e.g. [\"runs/\", \"scratch/\"]); empty gives it the whole bucket."
  type        = list(string)
  default     = []
}

# --- EKS (optional) ---

variable "create_eks" {
  description = "Create an EKS cluster with CPU and GPU node groups (and its OIDC provider for the role)."
  type        = bool
  default     = false

  validation {
    condition     = !var.create_eks || var.oidc_provider_arn == null
    error_message = "With create_eks = true the role trusts the new cluster: leave oidc_provider_arn/oidc_provider_url unset."
  }
}

variable "subnet_ids" {
  description = "Subnets of the EKS control plane (at least two availability zones); needed with create_eks."
  type        = list(string)
  default     = []
}

variable "node_subnet_ids" {
  description = "Subnets of the EKS worker nodes; null uses subnet_ids."
  type        = list(string)
  default     = null
}

variable "kubernetes_version" {
  description = "Kubernetes version of the EKS cluster; null takes the EKS default."
  type        = string
  default     = null
}

variable "cpu_instance_types" {
  description = "Instance types of the CPU node group."
  type        = list(string)
  default     = ["m6i.2xlarge"]
}

variable "cpu_node_sizes" {
  description = "Sizes of the CPU node group."
  type        = object({ min = number, desired = number, max = number })
  default     = { min = 1, desired = 2, max = 10 }
}

variable "gpu_instance_types" {
  description = "Instance types of the GPU node group."
  type        = list(string)
  default     = ["g5.xlarge"]
}

variable "gpu_ami_type" {
  description = "AMI type of the GPU node group: AL2023_x86_64_NVIDIA or AL2_x86_64_GPU."
  type        = string
  default     = "AL2023_x86_64_NVIDIA"
}

variable "gpu_node_sizes" {
  description = "Sizes of the GPU node group; min 0 scales it to zero between runs."
  type        = object({ min = number, desired = number, max = number })
  default     = { min = 0, desired = 0, max = 4 }
}

# --- testing against an S3-compatible server ---

variable "s3_endpoint" {
  description = <<-EOT
    URL of an S3-compatible endpoint (a local moto server in the tests). When set, the provider sends S3
    calls there with path-style addressing and skips the STS, IAM and instance-metadata look-ups that such
    a server lacks. Only the store can be applied that way (create_eks = false, no IRSA inputs). Null for AWS.
  EOT
  type        = string
  default     = null
}
