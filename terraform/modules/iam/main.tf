# One Google service account per service, which its Kubernetes ServiceAccount (same name, in the
# environment's namespace) acts as through Workload Identity. The accounts get no project role
# here: each resource module grants its own, on its own resources.

resource "google_service_account" "services" {
  for_each = toset(var.services)

  project      = var.project
  account_id   = each.key
  display_name = "${each.key} (trading platform, Kubernetes ${var.namespace}/${each.key})"
}

resource "google_service_account_iam_member" "workload_identity" {
  for_each = toset(var.services)

  service_account_id = google_service_account.services[each.key].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project}.svc.id.goog[${var.namespace}/${each.key}]"
}
