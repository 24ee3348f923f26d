variable "project" {
  description = "The Google Cloud project of the repository."
  type        = string
}

variable "region" {
  description = "The repository's region (the host <region>-docker.pkg.dev)."
  type        = string
}

variable "repository" {
  description = "The repository's id."
  type        = string
  default     = "trading"
}

variable "kms_key" {
  description = "The Cloud KMS key that encrypts the images."
  type        = string
}

variable "readers" {
  description = "Name => IAM member allowed to pull images (the cluster's nodes)."
  type        = map(string)
}

variable "labels" {
  description = "Labels of the repository."
  type        = map(string)
  default     = {}
}
