output "name" {
  description = "The cluster's name (gcloud container clusters get-credentials NAME --region REGION)."
  value       = google_container_cluster.cluster.name
}

output "endpoint" {
  description = "The control plane's address."
  value       = google_container_cluster.cluster.endpoint
  sensitive   = true
}

output "node_service_account" {
  description = "The nodes' service account, as an IAM member."
  value       = google_service_account.nodes.member
}

output "workload_pool" {
  description = "The Workload Identity pool of the cluster's Kubernetes ServiceAccounts."
  value       = google_container_cluster.cluster.workload_identity_config[0].workload_pool
}
