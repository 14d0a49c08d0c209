variable "name" {
  description = "Name of the IAM role."
  type        = string
}

variable "bucket_arn" {
  description = "ARN of the output bucket the role may read and write (arn:PARTITION:s3:::NAME)."
  type        = string

  validation {
    condition     = can(regex("^arn:[a-z-]+:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_arn))
    error_message = "bucket_arn must be a bucket ARN such as \"arn:aws:s3:::my-bucket\" (no key part)."
  }
}

variable "prefixes" {
  description = "Key prefixes (e.g. [\"runs/\", \"scratch/\"]) the role is limited to; empty gives the whole bucket."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.prefixes : length(p) > 1 && endswith(p, "/") && !startswith(p, "/") && !strcontains(p, "*")])
    error_message = "Each prefix must be a non-empty key prefix ending with \"/\", without a leading \"/\" or \"*\"."
  }
}

variable "kms_key_arn" {
  description = "ARN of the bucket's KMS key when it uses SSE-KMS; null when it uses SSE-S3."
  type        = string
  default     = null
}

variable "oidc_provider_arn" {
  description = "ARN of the cluster's IAM OIDC provider (arn:aws:iam::ACCOUNT:oidc-provider/oidc.eks.REGION.amazonaws.com/id/ID)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^arn:[a-z-]+:iam::[0-9]{12}:oidc-provider/.+", var.oidc_provider_arn))
    error_message = "oidc_provider_arn must be an IAM OIDC provider ARN, arn:aws:iam::ACCOUNT:oidc-provider/ISSUER."
  }
}

variable "oidc_provider_url" {
  description = "Issuer URL of the cluster's OIDC provider, with or without \"https://\"."
  type        = string
  nullable    = false
}

variable "namespace" {
  description = "Kubernetes namespace of the ServiceAccount that assumes the role (no wildcards)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a Kubernetes namespace name (lowercase letters, digits, '-')."
  }
}

variable "service_account" {
  description = <<-EOT
    Name of the Kubernetes ServiceAccount (of the runner and the Dask pods) that may assume the role, or a
    pattern with "*" (matched with StringLike): the chart makes one ServiceAccount per release, named after it.
  EOT
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9*]([-a-z0-9.*]{0,251}[a-z0-9*])?$", var.service_account))
    error_message = "service_account must be a ServiceAccount name (lowercase letters, digits, '-', '.') or a pattern with '*'."
  }
}

variable "permissions_boundary_arn" {
  description = "ARN of a permissions boundary policy for the role, where the account requires one."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for the role."
  type        = map(string)
  default     = {}
}
