variable "project" {
  description = "The environment's Google Cloud project (GCP_PROJECT in k8s/overlays/<env>)."
  type        = string
}

variable "environment" {
  description = "dev or prod: config/<env>.yaml, namespace trading-<env>."
  type        = string
  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "The environment is dev or prod."
  }
}

variable "region" {
  description = "The region of the cluster, the registry, the topics' messages and the secrets."
  type        = string
}

variable "topic_prefix" {
  description = "messaging.topic_prefix of config/<env>.yaml."
  type        = string
}

variable "dataset" {
  description = "database.dataset of config/<env>.yaml."
  type        = string
}

variable "bigquery_location" {
  description = "database.location of config/<env>.yaml: where the dataset lives."
  type        = string
}

variable "authorized_networks" {
  description = "Name => CIDR of the networks that may reach the cluster's control plane."
  type        = map(string)
}

variable "machine_type" {
  description = "The nodes' machine type."
  type        = string
}

variable "min_nodes_per_zone" {
  description = "The node pool's least nodes in each zone."
  type        = number
}

variable "max_nodes_per_zone" {
  description = "The node pool's most nodes in each zone."
  type        = number
}

variable "deletion_protection" {
  description = "Refuse to destroy the cluster in a plan (the warehouse's tables are always protected)."
  type        = bool
  default     = true
}

variable "venue_secrets" {
  description = "Secret ids of venue credentials (the venue-credentials component), readable by execution-router alone."
  type        = list(string)
  default     = []
}

variable "shards" {
  description = "Shards of the platform (config sharding.shards; k8s/README.md \"Adding a shard\")."
  type        = number
  default     = 1
}
