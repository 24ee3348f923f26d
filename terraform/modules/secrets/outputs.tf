output "secret_ids" {
  description = "Secret id => its resource name (projects/<project>/secrets/<id>)."
  value       = { for id, secret in google_secret_manager_secret.secrets : id => secret.name }
}
