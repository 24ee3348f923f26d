output "members" {
  description = "Service => its Google service account, as an IAM member."
  value       = { for name, account in google_service_account.services : name => account.member }
}

output "emails" {
  description = "Service => the email its Kubernetes ServiceAccount names (iam.gke.io/gcp-service-account)."
  value       = { for name, account in google_service_account.services : name => account.email }
}
