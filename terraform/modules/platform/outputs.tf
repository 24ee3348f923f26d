output "cluster" {
  description = "The GKE cluster's name."
  value       = module.gke.name
}

output "registry" {
  description = "The images' repository: <registry>/<service>:<tag>."
  value       = module.registry.url
}

output "service_accounts" {
  description = "Service => the Google service account its Kubernetes ServiceAccount names."
  value       = module.iam.emails
}

output "subscriptions" {
  description = "The durable subscriptions, by the name the code gives them."
  value       = module.pubsub.subscriptions
}

output "dead_letter_subscriptions" {
  description = "Where Pub/Sub's dead letters wait for an operator, by subscription."
  value       = module.pubsub.dead_letter_subscriptions
}
