output "dataset_id" {
  value = google_bigquery_dataset.warehouse.dataset_id
}

output "table_ids" {
  description = "Every table of the warehouse, by name."
  value       = { for name, table in google_bigquery_table.tables : name => table.table_id }
}
