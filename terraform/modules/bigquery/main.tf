# The warehouse in BigQuery: one dataset, and every table of the one schema definition
# (libs/trading-core/src/trading_core/store/schema.py), read from tables.json, which `make schema`
# writes from it and a test keeps equal to it. Each table is partitioned by day on its
# partition field (event_time) and clustered as the schema says (account_id, instrument).
#
# The services write with the Storage Write API and run one query at start (the last journal
# position fed), so each gets roles/bigquery.dataEditor on this dataset and roles/bigquery.jobUser
# on the project; nothing else. Data is encrypted with a key of ours.
#
# Schema changes are additive (new tables, new NULLABLE columns): BigQuery applies them in place.
# The schema refuses renames, type changes and removals, which would make Terraform replace a
# table with its data.

locals {
  tables = jsondecode(file("${path.module}/tables.json"))
}

resource "google_bigquery_dataset" "warehouse" {
  project     = var.project
  dataset_id  = var.dataset
  location    = var.location
  description = "Trading platform: every service's events, raw and typed, for analysts."
  labels      = var.labels

  default_encryption_configuration {
    kms_key_name = var.kms_key
  }
}

resource "google_bigquery_dataset_iam_member" "writers" {
  for_each = var.writers

  project    = var.project
  dataset_id = google_bigquery_dataset.warehouse.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = each.value
}

resource "google_project_iam_member" "job_users" {
  for_each = var.writers

  project = var.project
  role    = "roles/bigquery.jobUser"
  member  = each.value
}

resource "google_bigquery_table" "tables" {
  for_each = local.tables

  project     = var.project
  dataset_id  = google_bigquery_dataset.warehouse.dataset_id
  table_id    = each.key
  description = each.value.description
  schema      = jsonencode(each.value.schema)
  clustering  = each.value.clustering
  labels      = var.labels

  encryption_configuration {
    kms_key_name = var.kms_key
  }

  time_partitioning {
    type          = "DAY"
    field         = each.value.partition_field
    expiration_ms = var.partition_expiration_days == null ? null : var.partition_expiration_days * 86400000
  }

  deletion_protection = var.deletion_protection
}
