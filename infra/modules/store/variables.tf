variable "bucket_name" {
  description = "Name of the output bucket (globally unique, 3-63 lowercase letters, digits, dots or hyphens)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be 3-63 lowercase letters, digits, dots or hyphens, starting and ending with a letter or digit."
  }
}

variable "kms_key_arn" {
  description = "ARN of a KMS key for SSE-KMS (with an S3 Bucket Key); null keeps SSE-S3 (AES256)."
  type        = string
  default     = null
}

variable "scratch_prefix" {
  description = "Key prefix of intermediate data that expires (e.g. \"scratch/\"); it must end with \"/\"."
  type        = string
  default     = "scratch/"

  validation {
    # An empty prefix would expire every object in the bucket.
    condition     = length(var.scratch_prefix) > 1 && endswith(var.scratch_prefix, "/")
    error_message = "scratch_prefix must be a non-empty key prefix ending with \"/\", such as \"scratch/\"."
  }
}

variable "scratch_expiration_days" {
  description = "Days after which objects under scratch_prefix expire."
  type        = number
  default     = 7

  validation {
    condition     = var.scratch_expiration_days >= 1 && floor(var.scratch_expiration_days) == var.scratch_expiration_days
    error_message = "scratch_expiration_days must be a whole number of days, at least 1."
  }
}

variable "abort_incomplete_multipart_days" {
  description = "Days after which incomplete multipart uploads (anywhere in the bucket) are aborted."
  type        = number
  default     = 7

  validation {
    condition     = var.abort_incomplete_multipart_days >= 1 && floor(var.abort_incomplete_multipart_days) == var.abort_incomplete_multipart_days
    error_message = "abort_incomplete_multipart_days must be a whole number of days, at least 1."
  }
}

variable "noncurrent_version_expiration_days" {
  description = "Days after which overwritten or deleted object versions are removed; null keeps them forever."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_expiration_days == null || try(var.noncurrent_version_expiration_days >= 1, false)
    error_message = "noncurrent_version_expiration_days must be null or at least 1."
  }
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete a bucket that still holds objects (and all their versions)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for the bucket (added to the provider's default_tags)."
  type        = map(string)
  default     = {}
}
