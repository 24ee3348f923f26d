output "key_ids" {
  description = "Key name => its id, for the resources that encrypt with it."
  value       = { for name, key in google_kms_crypto_key.keys : name => key.id }
  # A resource encrypted with a key needs its agent's grant first.
  depends_on = [google_kms_crypto_key_iam_member.users]
}
