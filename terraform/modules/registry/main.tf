# The Artifact Registry repository of the service images:
# <region>-docker.pkg.dev/<project>/<repository>/<service>, as the overlays and values name them.
# Release tags are immutable (a tag always means the same image); untagged images are removed
# after a month. Only the cluster's nodes may pull.

resource "google_artifact_registry_repository" "images" {
  project       = var.project
  location      = var.region
  repository_id = var.repository
  format        = "DOCKER"
  description   = "Trading platform service images."
  kms_key_name  = var.kms_key
  labels        = var.labels

  docker_config {
    immutable_tags = true
  }

  cleanup_policies {
    id     = "delete-untagged"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "2592000s" # 30 days
    }
  }
}

resource "google_artifact_registry_repository_iam_member" "readers" {
  for_each = var.readers

  project    = var.project
  location   = var.region
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = each.value
}
