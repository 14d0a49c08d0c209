output "bucket_name" {
  description = "Name of the output bucket."
  value       = aws_s3_bucket.this.bucket
}

output "bucket_arn" {
  description = "ARN of the output bucket."
  value       = aws_s3_bucket.this.arn
}

output "scratch_prefix" {
  description = "Key prefix whose objects expire after scratch_expiration_days."
  value       = var.scratch_prefix
}
