# The prod environment: `terraform -chdir=terraform/envs/prod init && terraform -chdir=terraform/envs/prod apply`
# (terraform/README.md). Its names follow config/prod.yaml and k8s/overlays/prod, which
# tests/deploy/test_terraform.py compares with these values.

terraform {
  required_version = ">= 1.5, < 2.0"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "6.49.2"
    }
  }
  # The bucket is made once, before the first init (terraform/README.md, "Remote state").
  backend "gcs" {
    bucket = "trading-platform-prod-tfstate"
    prefix = "terraform/state"
  }
}

provider "google" {
  project = "trading-platform-prod"
  region  = "europe-west1"
}

module "platform" {
  source              = "../../modules/platform"
  project             = "trading-platform-prod"
  environment         = "prod"
  region              = "europe-west1"
  topic_prefix        = "trading-"
  dataset             = "trading_prod"
  bigquery_location   = "US"
  authorized_networks = var.authorized_networks
  machine_type        = "e2-standard-4"
  min_nodes_per_zone  = 1
  max_nodes_per_zone  = 3
  deletion_protection = true
}

variable "authorized_networks" {
  description = "Name => CIDR of the networks that may reach the control plane (terraform.tfvars, not in git)."
  type        = map(string)
}

output "cluster" {
  value = module.platform.cluster
}

output "registry" {
  value = module.platform.registry
}

output "service_accounts" {
  value = module.platform.service_accounts
}

output "dead_letter_subscriptions" {
  value = module.platform.dead_letter_subscriptions
}
