variable "project" {
  description = "The Google Cloud project of the secrets."
  type        = string
}

variable "region" {
  description = "The one region where the secrets' values are stored."
  type        = string
}

variable "secrets" {
  description = "Secret id => the services that read it (the SecretProviderClasses they mount)."
  type        = map(list(string))
}

variable "members" {
  description = "Service => its Google service account, as an IAM member."
  type        = map(string)
}

variable "labels" {
  description = "Labels of the secrets."
  type        = map(string)
  default     = {}
}
