output "topics" {
  description = "Topic => its full name."
  value       = { for name, topic in google_pubsub_topic.topics : name => topic.id }
}

output "subscriptions" {
  description = "Subscription => its full name."
  value       = { for name, sub in google_pubsub_subscription.subscriptions : name => sub.id }
}

output "dead_letter_subscriptions" {
  description = "Subscription => the subscription that keeps its dead letters."
  value       = { for name, sub in google_pubsub_subscription.dead_letters : name => sub.id }
}
