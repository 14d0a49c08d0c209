# The store module on its own, against a mock AWS provider (no credentials, no network).

mock_provider "aws" {
  mock_resource "aws_s3_bucket" {
    defaults = {
      arn = "arn:aws:s3:::gppscale-test-output"
    }
  }
}

variables {
  bucket_name = "gppscale-test-output"
}

run "defaults_make_a_private_versioned_encrypted_bucket" {
  command = apply

  module {
    source = "./modules/store"
  }

  assert {
    condition     = aws_s3_bucket.this.bucket == "gppscale-test-output" && !aws_s3_bucket.this.force_destroy
    error_message = "The bucket must carry bucket_name and refuse to be destroyed while it holds objects."
  }

  assert {
    condition     = aws_s3_bucket_versioning.this.versioning_configuration[0].status == "Enabled"
    error_message = "Versioning must be Enabled."
  }

  assert {
    condition = [
      for r in aws_s3_bucket_server_side_encryption_configuration.this.rule :
      r.apply_server_side_encryption_by_default[0].sse_algorithm
    ] == ["AES256"]
    error_message = "Default encryption must be SSE-S3 (AES256)."
  }

  assert {
    condition = alltrue([
      aws_s3_bucket_public_access_block.this.block_public_acls,
      aws_s3_bucket_public_access_block.this.block_public_policy,
      aws_s3_bucket_public_access_block.this.ignore_public_acls,
      aws_s3_bucket_public_access_block.this.restrict_public_buckets,
    ])
    error_message = "All four public access block settings must be true."
  }

  assert {
    condition     = aws_s3_bucket_ownership_controls.this.rule[0].object_ownership == "BucketOwnerEnforced"
    error_message = "Object ownership must be BucketOwnerEnforced (ACLs disabled)."
  }

  assert {
    condition = one([
      for r in aws_s3_bucket_lifecycle_configuration.this.rule : r
      if r.status == "Enabled" && r.filter[0].prefix == "scratch/" && try(r.expiration[0].days, null) == 7
    ]) != null
    error_message = "One enabled lifecycle rule must expire objects under scratch/ after 7 days."
  }

  assert {
    # The mock provider fills the computed `filter[0].prefix` of `filter {}` with a random string: look at
    # the configured `and`/`tag` blocks (none) and the rule's id instead.
    condition = one([
      for r in aws_s3_bucket_lifecycle_configuration.this.rule : r
      if r.id == "abort-incomplete-multipart-uploads" && r.status == "Enabled" && length(r.filter[0].and) + length(r.filter[0].tag) == 0
      && try(r.abort_incomplete_multipart_upload[0].days_after_initiation, null) == 7
    ]) != null
    error_message = "One enabled bucket-wide lifecycle rule must abort incomplete multipart uploads."
  }

  assert {
    condition = jsondecode(aws_s3_bucket_policy.this.policy).Statement == [
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = ["arn:aws:s3:::gppscale-test-output", "arn:aws:s3:::gppscale-test-output/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
    error_message = "The bucket policy must deny every request that does not use TLS, and nothing else."
  }

  assert {
    condition     = output.bucket_name == "gppscale-test-output" && output.bucket_arn == "arn:aws:s3:::gppscale-test-output"
    error_message = "Outputs must give the bucket's name and ARN."
  }
}

run "kms_key_and_custom_scratch" {
  command = plan

  module {
    source = "./modules/store"
  }

  variables {
    kms_key_arn                        = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    scratch_prefix                     = "tmp/"
    scratch_expiration_days            = 3
    noncurrent_version_expiration_days = null
  }

  assert {
    condition = [
      for r in aws_s3_bucket_server_side_encryption_configuration.this.rule : [
        r.apply_server_side_encryption_by_default[0].sse_algorithm,
        r.apply_server_side_encryption_by_default[0].kms_master_key_id,
        r.bucket_key_enabled,
      ]
      ] == [[
        "aws:kms", "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab", true,
    ]]
    error_message = "With kms_key_arn the bucket must use SSE-KMS with that key and a Bucket Key."
  }

  assert {
    condition = [
      for r in aws_s3_bucket_lifecycle_configuration.this.rule : [r.id, try(r.expiration[0].days, null)]
      ] == [
      ["expire-scratch", 3],
      ["abort-incomplete-multipart-uploads", null],
    ] && aws_s3_bucket_lifecycle_configuration.this.rule[0].filter[0].prefix == "tmp/"
    error_message = "The scratch rule must follow scratch_prefix/scratch_expiration_days; no noncurrent-version rule when it is null."
  }
}

run "an_empty_scratch_prefix_is_refused" {
  command = plan

  module {
    source = "./modules/store"
  }

  variables {
    scratch_prefix = ""
  }

  expect_failures = [var.scratch_prefix]
}
