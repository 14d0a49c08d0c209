# The identity of the runner and the Dask pods: an IAM role that Kubernetes ServiceAccounts of one
# namespace (one name, or a name pattern) assume through IRSA (a web identity token from the cluster's
# OIDC provider), allowed to read and write the output bucket and nothing else.

locals {
  issuer = trimprefix(trimprefix(var.oidc_provider_url, "https://"), "http://")
  aud    = { "${local.issuer}:aud" = "sts.amazonaws.com" }
  sub    = { "${local.issuer}:sub" = "system:serviceaccount:${var.namespace}:${var.service_account}" }
  # An exact ServiceAccount name is matched with StringEquals; a pattern ("*", "*gppscale*") with StringLike.
  exact_sub = !strcontains(var.service_account, "*")

  # Without prefixes: the whole bucket. With prefixes: only keys below them.
  object_arns = length(var.prefixes) == 0 ? ["${var.bucket_arn}/*"] : [for p in var.prefixes : "${var.bucket_arn}/${p}*"]

  bucket_statement = merge(
    {
      Sid      = "ListTheBucket"
      Effect   = "Allow"
      Action   = ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"]
      Resource = [var.bucket_arn]
    },
    length(var.prefixes) == 0 ? {} : {
      Condition = { StringLike = { "s3:prefix" = concat(var.prefixes, [for p in var.prefixes : "${p}*"]) } }
    },
  )
  object_statement = {
    Sid    = "ReadWriteObjects"
    Effect = "Allow"
    Action = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    Resource = local.object_arns
  }
  # SSE-KMS objects need the key for reads and writes; SSE-S3 needs nothing.
  kms_statements = var.kms_key_arn == null ? [] : [
    {
      Sid      = "UseTheBucketKey"
      Effect   = "Allow"
      Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
      Resource = [var.kms_key_arn]
    },
  ]
}

resource "aws_iam_role" "this" {
  name                 = var.name
  description          = "gppscale runner and Dask pods (IRSA: ${var.namespace}/${var.service_account})"
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "ServiceAccountWebIdentity"
        Effect    = "Allow"
        Principal = { Federated = var.oidc_provider_arn }
        Action    = "sts:AssumeRoleWithWebIdentity"
        Condition = merge(
          { StringEquals = merge(local.aud, local.exact_sub ? local.sub : {}) },
          local.exact_sub ? {} : { StringLike = local.sub },
        )
      },
    ]
  })
}

resource "aws_iam_role_policy" "bucket" {
  name = "${var.name}-bucket"
  role = aws_iam_role.this.id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = concat([local.bucket_statement, local.object_statement], local.kms_statements)
  })
}
