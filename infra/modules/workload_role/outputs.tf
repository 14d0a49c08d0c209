output "role_arn" {
  description = "ARN of the role: the value of the ServiceAccount annotation `eks.amazonaws.com/role-arn`."
  value       = aws_iam_role.this.arn
}

output "role_name" {
  description = "Name of the role."
  value       = aws_iam_role.this.name
}

output "policy_json" {
  description = "The role's inline policy document (JSON), for review."
  value       = aws_iam_role_policy.bucket.policy
}

output "trust_policy_json" {
  description = "The role's trust policy (JSON), for review."
  value       = aws_iam_role.this.assume_role_policy
}
