variable "project" {
  description = "The Google Cloud project of the service accounts and the cluster."
  type        = string
}

variable "namespace" {
  description = "The Kubernetes namespace of the services' ServiceAccounts (trading-<env>)."
  type        = string
}

variable "services" {
  description = "The services: each is a Google service account and a Kubernetes ServiceAccount of that name."
  type        = list(string)
}
