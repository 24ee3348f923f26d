output "network" {
  description = "The VPC's self link."
  value       = google_compute_network.vpc.self_link
}

output "subnetwork" {
  description = "The nodes' subnet's self link."
  value       = google_compute_subnetwork.nodes.self_link
}

output "pods_range_name" {
  description = "The secondary range of the pods."
  value       = google_compute_subnetwork.nodes.secondary_ip_range[0].range_name
}

output "services_range_name" {
  description = "The secondary range of the Services."
  value       = google_compute_subnetwork.nodes.secondary_ip_range[1].range_name
}
