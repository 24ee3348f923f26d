variable "project" {
  description = "The Google Cloud project of the key ring."
  type        = string
}

variable "location" {
  description = "The key ring's location: the region of what it encrypts."
  type        = string
}

variable "name" {
  description = "The key ring's name (key rings cannot be deleted: a new name per environment)."
  type        = string
}

variable "keys" {
  description = "Key name => the one member (a service agent) that may encrypt and decrypt with it."
  type        = map(string)
}

variable "rotation_period" {
  description = "How often each key gets a new primary version."
  type        = string
  default     = "7776000s" # 90 days
}

variable "labels" {
  description = "Labels of the keys."
  type        = map(string)
  default     = {}
}
