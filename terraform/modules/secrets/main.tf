# Secret Manager secrets: the secrets only, never their values (`gcloud secrets versions add`
# sets those, outside git). Each secret is readable by the services that mount it and no one
# else (roles/secretmanager.secretAccessor on that secret alone).

locals {
  accessors = merge([
    for secret, services in var.secrets : {
      for service in services : "${secret}/${service}" => { secret = secret, service = service }
    }
  ]...)
}

resource "google_secret_manager_secret" "secrets" {
  for_each = var.secrets

  project   = var.project
  secret_id = each.key
  labels    = var.labels

  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }
}

resource "google_secret_manager_secret_iam_member" "accessors" {
  for_each = local.accessors

  project   = var.project
  secret_id = google_secret_manager_secret.secrets[each.value.secret].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = var.members[each.value.service]
}
