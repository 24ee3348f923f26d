# Customer-managed encryption keys: one key ring per environment and one key per purpose, each
# usable only by the Google service agent that encrypts with it (GKE's etcd secrets, Pub/Sub
# messages, BigQuery tables, Artifact Registry images). Keys rotate every 90 days; a key cannot
# be deleted by a plan (its data would be lost).

resource "google_kms_key_ring" "ring" {
  project  = var.project
  name     = var.name
  location = var.location
}

resource "google_kms_crypto_key" "keys" {
  for_each = var.keys

  name            = each.key
  key_ring        = google_kms_key_ring.ring.id
  rotation_period = var.rotation_period
  purpose         = "ENCRYPT_DECRYPT"
  labels          = var.labels

  lifecycle {
    prevent_destroy = true
  }
}

resource "google_kms_crypto_key_iam_member" "users" {
  for_each = var.keys

  crypto_key_id = google_kms_crypto_key.keys[each.key].id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = each.value
}
