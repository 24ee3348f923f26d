variable "project" {
  description = "The Google Cloud project of the dataset."
  type        = string
}

variable "dataset" {
  description = "The dataset id (database.dataset in the platform's config)."
  type        = string
  default     = "trading"
}

variable "location" {
  description = "The dataset's location, such as EU or europe-west1."
  type        = string
}

variable "partition_expiration_days" {
  description = "Days a day's partition is kept; null keeps every day."
  type        = number
  default     = null
}

variable "deletion_protection" {
  description = "Refuse to destroy a table (and its data) in a plan."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Labels of the dataset and its tables."
  type        = map(string)
  default     = {}
}

variable "kms_key" {
  description = "The Cloud KMS key (in the dataset's location) that encrypts the tables."
  type        = string
}

variable "writers" {
  description = "Service => its Google service account, as an IAM member: the services that feed the warehouse."
  type        = map(string)
  default     = {}
}
