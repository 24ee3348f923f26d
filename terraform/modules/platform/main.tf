# One environment of the platform: what terraform/envs/<env> applies. The names here are the
# ones the code, config/<env>.yaml and k8s/ use (tests/deploy/test_terraform.py checks them):
#
# - services: trading_core.store.schema.SERVICES, each a Google service account bound to the
#   Kubernetes ServiceAccount of that name in namespace trading-<env>;
# - topics: trading_core.bus.base.TOPICS (who subscribes) and PER_INSTANCE_TOPICS, and who
#   publishes what (the services' event_record/command_record topics);
# - secrets: those of the SecretProviderClasses (k8s/overlays/<env>/platform-keys.yaml, and the
#   venue-credentials component's, named per deployment), each readable by the services whose
#   pods mount that class: every service for the platform keys, execution-router alone for the
#   venues' credentials.

locals {
  services = ["order-management", "execution-router", "position-management", "market-data"]

  topics = {
    orders = {
      publishers           = ["order-management"]
      subscribers          = ["execution-router"]
      instance_subscribers = []
    }
    executions = {
      publishers           = ["execution-router"]
      subscribers          = ["order-management", "position-management"]
      instance_subscribers = []
    }
    positions = {
      publishers           = ["position-management"]
      subscribers          = []
      instance_subscribers = []
    }
    market-data = {
      publishers           = ["market-data"]
      subscribers          = []
      instance_subscribers = ["execution-router", "order-management", "position-management"]
    }
  }

  # SecretProviderClass (k8s/) => the secrets it mounts and the services whose pods mount it.
  secret_sets = {
    trading-platform-keys   = ["trading-service-key", "trading-service-key-sha256", "trading-operator-key-sha256"]
    execution-router-venues = var.venue_secrets
  }
  secret_readers = {
    trading-platform-keys   = ["order-management", "execution-router", "position-management", "market-data"]
    execution-router-venues = ["execution-router"]
  }
  secrets = merge([
    for set, ids in local.secret_sets : { for id in ids : id => local.secret_readers[set] }
  ]...)

  labels    = { app = "trading-platform", environment = var.environment }
  namespace = "trading-${var.environment}"
  name      = "trading-${var.environment}"
  number    = data.google_project.project.number

  apis = [
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "bigquerystorage.googleapis.com",
    "cloudkms.googleapis.com",
    "compute.googleapis.com",
    "container.googleapis.com",
    "iam.googleapis.com",
    "pubsub.googleapis.com",
    "secretmanager.googleapis.com",
  ]
}

data "google_project" "project" {
  project_id = var.project
}

# Reading it makes BigQuery's encryption service account, if the project has none yet.
data "google_bigquery_default_service_account" "bigquery" {
  project    = var.project
  depends_on = [google_project_service.apis]
}

resource "google_project_service" "apis" {
  for_each = toset(local.apis)

  project            = var.project
  service            = each.key
  disable_on_destroy = false
}

module "network" {
  source     = "../network"
  project    = var.project
  region     = var.region
  name       = local.name
  depends_on = [google_project_service.apis]
}

# Keys in the region, each for one Google service agent; BigQuery's in the dataset's location.
module "kms" {
  source   = "../kms"
  project  = var.project
  location = var.region
  name     = local.name
  labels   = local.labels
  keys = {
    gke-secrets = "serviceAccount:service-${local.number}@container-engine-robot.iam.gserviceaccount.com"
    pubsub      = "serviceAccount:service-${local.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
    registry    = "serviceAccount:service-${local.number}@gcp-sa-artifactregistry.iam.gserviceaccount.com"
  }
  depends_on = [google_project_service.apis]
}

module "kms_bigquery" {
  source   = "../kms"
  project  = var.project
  location = lower(var.bigquery_location)
  name     = "${local.name}-bigquery"
  labels   = local.labels
  keys = {
    bigquery = data.google_bigquery_default_service_account.bigquery.member
  }
  depends_on = [google_project_service.apis]
}

module "gke" {
  source                 = "../gke"
  project                = var.project
  region                 = var.region
  name                   = local.name
  network                = module.network.network
  subnetwork             = module.network.subnetwork
  pods_range_name        = module.network.pods_range_name
  services_range_name    = module.network.services_range_name
  authorized_networks    = var.authorized_networks
  secrets_encryption_key = module.kms.key_ids["gke-secrets"]
  machine_type           = var.machine_type
  min_nodes_per_zone     = var.min_nodes_per_zone
  max_nodes_per_zone     = var.max_nodes_per_zone
  deletion_protection    = var.deletion_protection
  labels                 = local.labels
}

# The Workload Identity pool exists once the cluster does.
module "iam" {
  source     = "../iam"
  project    = var.project
  namespace  = local.namespace
  services   = local.services
  depends_on = [module.gke]
}

module "pubsub" {
  source         = "../pubsub"
  project        = var.project
  project_number = local.number
  region         = var.region
  topic_prefix   = var.topic_prefix
  topics         = local.topics
  shards         = var.shards
  members        = module.iam.members
  kms_key        = module.kms.key_ids["pubsub"]
  labels         = local.labels
}

module "bigquery" {
  source   = "../bigquery"
  project  = var.project
  dataset  = var.dataset
  location = var.bigquery_location
  kms_key  = module.kms_bigquery.key_ids["bigquery"]
  writers  = module.iam.members
  labels   = local.labels
}

module "registry" {
  source  = "../registry"
  project = var.project
  region  = var.region
  kms_key = module.kms.key_ids["registry"]
  readers = { nodes = module.gke.node_service_account }
  labels  = local.labels
}

module "secrets" {
  source  = "../secrets"
  project = var.project
  region  = var.region
  secrets = local.secrets
  members = module.iam.members
  labels  = local.labels
}
