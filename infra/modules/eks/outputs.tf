output "cluster_name" {
  description = "Name of the EKS cluster (`aws eks update-kubeconfig --name ...`)."
  value       = aws_eks_cluster.this.name
}

output "cluster_arn" {
  description = "ARN of the EKS cluster."
  value       = aws_eks_cluster.this.arn
}

output "cluster_endpoint" {
  description = "URL of the Kubernetes API server."
  value       = aws_eks_cluster.this.endpoint
}

output "cluster_certificate_authority_data" {
  description = "Base64 CA certificate of the Kubernetes API server."
  value       = aws_eks_cluster.this.certificate_authority[0].data
}

output "oidc_provider_arn" {
  description = "ARN of the cluster's IAM OIDC provider (trusted by IRSA roles)."
  value       = aws_iam_openid_connect_provider.this.arn
}

output "oidc_provider_url" {
  description = "Issuer of the cluster's OIDC provider, without \"https://\"."
  value       = trimprefix(aws_eks_cluster.this.identity[0].oidc[0].issuer, "https://")
}

output "node_role_arn" {
  description = "ARN of the IAM role of the worker nodes."
  value       = aws_iam_role.node.arn
}

output "node_group_names" {
  description = "Names of the node groups, by pool (\"cpu\", \"gpu\")."
  value       = { for pool, group in aws_eks_node_group.this : pool => group.node_group_name }
}
