# The dev environment: `terraform -chdir=terraform/envs/dev init && terraform -chdir=terraform/envs/dev apply`
# (terraform/README.md). Its names follow config/dev.yaml and k8s/overlays/dev, which
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
    bucket = "trading-platform-dev-tfstate"
    prefix = "terraform/state"
  }
}

provider "google" {
  project = "trading-platform-dev"
  region  = "europe-west1"
}

module "platform" {
  source              = "../../modules/platform"
  project             = "trading-platform-dev"
  environment         = "dev"
  region              = "europe-west1"
  topic_prefix        = "trading-"
  dataset             = "trading_dev"
  bigquery_location   = "US"
  authorized_networks = var.authorized_networks
  machine_type        = "e2-standard-2"
  min_nodes_per_zone  = 1
  max_nodes_per_zone  = 2
  deletion_protection = false
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
