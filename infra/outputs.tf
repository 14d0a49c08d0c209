output "bucket_name" {
  description = "Name of the output bucket."
  value       = module.store.bucket_name
}

output "bucket_arn" {
  description = "ARN of the output bucket."
  value       = module.store.bucket_arn
}

output "store_url" {
  description = "Base URL of run stores: the run spec's `output.store` is this plus a run name."
  value       = "s3://${module.store.bucket_name}/${var.run_prefix}"
}

output "scratch_url" {
  description = "URL of the expiring scratch prefix."
  value       = "s3://${module.store.bucket_name}/${module.store.scratch_prefix}"
}

output "role_arn" {
  description = "IRSA role ARN for the chart's `serviceAccount.annotations.\"eks.amazonaws.com/role-arn\"`; null without IRSA inputs."
  value       = one(module.workload_role[*].role_arn)
}

output "cluster_name" {
  description = "Name of the EKS cluster; null unless create_eks."
  value       = one(module.eks[*].cluster_name)
}

output "cluster_endpoint" {
  description = "Kubernetes API URL of the EKS cluster; null unless create_eks."
  value       = one(module.eks[*].cluster_endpoint)
}

output "oidc_provider_arn" {
  description = "ARN of the OIDC provider the role trusts; null without IRSA."
  value       = var.create_eks ? one(module.eks[*].oidc_provider_arn) : var.oidc_provider_arn
}
