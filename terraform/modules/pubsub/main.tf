# The event bus's topics and durable subscriptions, as trading_core.bus names them: topic
# `<prefix><topic>`, subscription `<prefix><topic>.<service>`. Every subscription is ordered
# (ordering key: the order id, or account + instrument for positions), with the acknowledgement
# deadline the consumers use, a short retry backoff, and a dead-letter topic as a backstop for
# a message the service could not even park in its own dead-letter store. Per-instance
# subscriptions (market-data: one per running process, deleted at its stop) are made by the
# services themselves; this module grants what that takes.
#
# Shards (README "Sharding by account"): with `shards` above 1, each durable subscription is one
# per shard, `<prefix><topic>.<service>.shard-<N>`, filtered on the message attribute the
# publishers set (`attributes.shard = "N"`); with one shard the names have no shard and no filter
# (as trading_core.bus.base.subscription_name). A filter cannot change once a subscription
# exists: going from one shard to more makes new subscriptions (k8s/README.md "Adding a shard").
#
# Roles, per service and resource: pubsub.publisher on the topics it publishes to,
# pubsub.subscriber on its subscriptions, and for per-instance topics pubsub.subscriber on the
# topic (to attach a subscription) with a project role limited to creating, consuming and
# deleting subscriptions (their names are not known in advance).

locals {
  sharded = var.shards > 1
  subscriptions = merge(flatten([
    for topic, spec in var.topics : [
      for service in spec.subscribers : {
        for shard in range(var.shards) :
        (local.sharded ? "${topic}.${service}.shard-${shard}" : "${topic}.${service}") => {
          topic   = topic
          service = service
          shard   = local.sharded ? shard : null
        }
      }
    ]
  ])...)
  publishers = merge([
    for topic, spec in var.topics : {
      for service in spec.publishers : "${topic}/${service}" => { topic = topic, service = service }
    }
  ]...)
  instance_subscribers = merge([
    for topic, spec in var.topics : {
      for service in spec.instance_subscribers : "${topic}/${service}" => { topic = topic, service = service }
    }
  ]...)
  pubsub_agent = "serviceAccount:service-${var.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic" "topics" {
  for_each = var.topics

  project                    = var.project
  name                       = "${var.topic_prefix}${each.key}"
  kms_key_name               = var.kms_key
  message_retention_duration = var.message_retention
  labels                     = var.labels

  message_storage_policy {
    allowed_persistence_regions = [var.region]
  }
}

resource "google_pubsub_subscription" "subscriptions" {
  for_each = local.subscriptions

  project                    = var.project
  name                       = "${var.topic_prefix}${each.key}"
  topic                      = google_pubsub_topic.topics[each.value.topic].id
  enable_message_ordering    = true
  ack_deadline_seconds       = var.ack_deadline_seconds
  message_retention_duration = var.message_retention
  labels                     = var.labels
  # One shard's messages only (the publishers' `shard` attribute); none with a single shard.
  filter = each.value.shard == null ? "" : "attributes.shard = \"${each.value.shard}\""

  # A durable subscription never expires, however long its service is down.
  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = var.minimum_backoff
    maximum_backoff = var.maximum_backoff
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letters[each.key].id
    max_delivery_attempts = var.max_delivery_attempts
  }
}

# One dead-letter topic per subscription, and a subscription that keeps what lands there for an
# operator (`gcloud pubsub subscriptions pull <name>.dead-letter`).
resource "google_pubsub_topic" "dead_letters" {
  for_each = local.subscriptions

  project                    = var.project
  name                       = "${var.topic_prefix}${each.key}.dead-letter"
  kms_key_name               = var.kms_key
  message_retention_duration = var.message_retention
  labels                     = var.labels

  message_storage_policy {
    allowed_persistence_regions = [var.region]
  }
}

resource "google_pubsub_subscription" "dead_letters" {
  for_each = local.subscriptions

  project                    = var.project
  name                       = "${var.topic_prefix}${each.key}.dead-letter"
  topic                      = google_pubsub_topic.dead_letters[each.key].id
  ack_deadline_seconds       = 600
  message_retention_duration = var.message_retention
  labels                     = var.labels

  expiration_policy {
    ttl = ""
  }
}

# Pub/Sub moves a message to a dead-letter topic as its own service agent.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  for_each = local.subscriptions

  project = var.project
  topic   = google_pubsub_topic.dead_letters[each.key].name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each = local.subscriptions

  project      = var.project
  subscription = google_pubsub_subscription.subscriptions[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

resource "google_pubsub_topic_iam_member" "publishers" {
  for_each = local.publishers

  project = var.project
  topic   = google_pubsub_topic.topics[each.value.topic].name
  role    = "roles/pubsub.publisher"
  member  = var.members[each.value.service]
}

resource "google_pubsub_subscription_iam_member" "subscribers" {
  for_each = local.subscriptions

  project      = var.project
  subscription = google_pubsub_subscription.subscriptions[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = var.members[each.value.service]
}

# Attaching a subscription of one's own to the topic.
resource "google_pubsub_topic_iam_member" "instance_subscribers" {
  for_each = local.instance_subscribers

  project = var.project
  topic   = google_pubsub_topic.topics[each.value.topic].name
  role    = "roles/pubsub.subscriber"
  member  = var.members[each.value.service]
}

resource "google_project_iam_custom_role" "instance_subscriber" {
  count = length(local.instance_subscribers) > 0 ? 1 : 0

  project     = var.project
  role_id     = var.instance_subscriber_role_id
  title       = "Per-instance Pub/Sub subscriber"
  description = "Creates, consumes and deletes the subscriptions of one running process."
  permissions = [
    "pubsub.subscriptions.consume",
    "pubsub.subscriptions.create",
    "pubsub.subscriptions.delete",
  ]
}

resource "google_project_iam_member" "instance_subscribers" {
  for_each = toset([for key, pair in local.instance_subscribers : pair.service])

  project = var.project
  role    = google_project_iam_custom_role.instance_subscriber[0].id
  member  = var.members[each.key]
}
