variable "project" {
  description = "The Google Cloud project of the cluster."
  type        = string
}

variable "region" {
  description = "The cluster's region: its control plane and nodes span the region's zones."
  type        = string
}

variable "name" {
  description = "The cluster's name."
  type        = string
}

variable "network" {
  description = "The VPC the nodes are in."
  type        = string
}

variable "subnetwork" {
  description = "The subnet of the nodes, with the pods' and Services' secondary ranges."
  type        = string
}

variable "pods_range_name" {
  description = "The subnet's secondary range of the pods."
  type        = string
}

variable "services_range_name" {
  description = "The subnet's secondary range of the Services."
  type        = string
}

variable "master_cidr" {
  description = "A /28 for the control plane's private endpoint, outside the subnet's ranges."
  type        = string
  default     = "172.16.0.0/28"
}

variable "authorized_networks" {
  description = "Name => CIDR of the networks that may reach the control plane (kubectl, Helm, CI)."
  type        = map(string)
}

variable "release_channel" {
  description = "The GKE release channel; k8s/KUBERNETES_VERSION is its default minor version."
  type        = string
  default     = "REGULAR"
}

variable "secrets_encryption_key" {
  description = "The Cloud KMS key that encrypts Kubernetes Secrets in etcd."
  type        = string
}

variable "machine_type" {
  description = "The nodes' machine type."
  type        = string
}

variable "min_nodes_per_zone" {
  description = "The node pool's least nodes in each zone."
  type        = number
  default     = 1
}

variable "max_nodes_per_zone" {
  description = "The node pool's most nodes in each zone."
  type        = number
  default     = 2
}

variable "deletion_protection" {
  description = "Refuse to destroy the cluster in a plan."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Labels of the cluster and its nodes."
  type        = map(string)
  default     = {}
}
