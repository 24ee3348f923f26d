variable "project" {
  description = "The Google Cloud project of the topics."
  type        = string
}

variable "project_number" {
  description = "The project's number: Pub/Sub's service agent is named after it."
  type        = string
}

variable "region" {
  description = "The one region where messages are stored (the key's region)."
  type        = string
}

variable "topic_prefix" {
  description = "messaging.topic_prefix of config/<env>.yaml, before every topic and subscription."
  type        = string
}

variable "topics" {
  description = <<-EOT
    Topic => the services that publish to it, the services with a durable subscription to it
    (trading_core.bus.base.TOPICS) and the services that make a subscription per running
    process (PER_INSTANCE_TOPICS).
  EOT
  type = map(object({
    publishers           = list(string)
    subscribers          = list(string)
    instance_subscribers = list(string)
  }))
}

variable "members" {
  description = "Service => its Google service account, as an IAM member."
  type        = map(string)
}

variable "kms_key" {
  description = "The Cloud KMS key that encrypts the messages."
  type        = string
}

variable "ack_deadline_seconds" {
  description = "Seconds a consumer has to acknowledge (trading_core.bus.pubsub's deadline)."
  type        = number
  default     = 30
}

variable "minimum_backoff" {
  description = "Least delay before a nacked message comes again."
  type        = string
  default     = "1s"
}

variable "maximum_backoff" {
  description = "Longest delay before a nacked message comes again: later messages of its ordering key wait at most this long after it succeeds."
  type        = string
  default     = "10s"
}

variable "max_delivery_attempts" {
  description = "Deliveries before Pub/Sub moves a message to the dead-letter topic: more than the services' messaging.max_delivery_attempts, so that a service parks a failing message itself first."
  type        = number
  default     = 20
}

variable "message_retention" {
  description = "How long unacknowledged messages are kept."
  type        = string
  default     = "604800s" # 7 days
}

variable "instance_subscriber_role_id" {
  description = "The id of the project role for per-instance subscriptions."
  type        = string
  default     = "tradingInstanceSubscriber"
}

variable "labels" {
  description = "Labels of the topics and subscriptions."
  type        = map(string)
  default     = {}
}

variable "shards" {
  description = "Shards of the platform (config sharding.shards): above 1, one filtered subscription per shard."
  type        = number
  default     = 1

  validation {
    condition     = var.shards >= 1 && floor(var.shards) == var.shards
    error_message = "shards is a whole number, at least 1."
  }
}
