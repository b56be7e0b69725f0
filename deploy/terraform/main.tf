# APIs, network, encryption keys, registry and the service account.

locals {
  labels = {
    app         = "clarity"
    environment = var.environment
  }

  apis = [
    "artifactregistry.googleapis.com",
    "cloudkms.googleapis.com",
    "compute.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "servicenetworking.googleapis.com",
    "sqladmin.googleapis.com",
  ]
}

resource "google_project_service" "apis" {
  for_each = toset(local.apis)

  service            = each.value
  disable_on_destroy = false
}

# --- Network: Cloud SQL has only a private address; Cloud Run reaches it
# through Direct VPC egress on this subnet.

resource "google_compute_network" "main" {
  name                    = "clarity-${var.env_short}"
  auto_create_subnetworks = false

  depends_on = [google_project_service.apis]
}

resource "google_compute_subnetwork" "main" {
  name                     = "clarity-${var.env_short}"
  region                   = var.region
  network                  = google_compute_network.main.id
  ip_cidr_range            = var.subnet_cidr
  private_ip_google_access = true
}

resource "google_compute_global_address" "sql_peering" {
  name          = "clarity-${var.env_short}-sql-peering"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = 20
  network       = google_compute_network.main.id
}

resource "google_service_networking_connection" "sql" {
  network                 = google_compute_network.main.id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.sql_peering.name]
}

# --- Keys: one key ring per environment; the data key rotates every 90 days
# and is the customer-managed key (CMEK) of the database and the backups.

resource "google_kms_key_ring" "main" {
  name     = "clarity-${var.env_short}"
  location = var.region

  depends_on = [google_project_service.apis]
}

resource "google_kms_crypto_key" "data" {
  name            = "clarity-data"
  key_ring        = google_kms_key_ring.main.id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = "7776000s" # 90 days
  labels          = local.labels

  lifecycle {
    prevent_destroy = true
  }
}

# The Cloud SQL and Cloud Storage service agents encrypt with the key.
resource "google_project_service_identity" "sql" {
  provider = google-beta
  service  = "sqladmin.googleapis.com"
}

data "google_storage_project_service_account" "gcs" {}

resource "google_kms_crypto_key_iam_member" "sql_agent" {
  crypto_key_id = google_kms_crypto_key.data.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${google_project_service_identity.sql.email}"
}

resource "google_kms_crypto_key_iam_member" "gcs_agent" {
  crypto_key_id = google_kms_crypto_key.data.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

# --- Images: scripts/deploy.sh pushes REGION-docker.pkg.dev/PROJECT/clarity/clarity:VERSION.

resource "google_artifact_registry_repository" "clarity" {
  location      = var.region
  repository_id = "clarity"
  format        = "DOCKER"
  description   = "Clarity container images"
  labels        = local.labels

  depends_on = [google_project_service.apis]
}

# --- The identity the service and the migration job run as. Least privilege:
# logs, metrics and traces, its own secrets, and writing to the backups bucket.
# No project-wide data roles; the database is reached by address and password.

resource "google_service_account" "run" {
  account_id   = "clarity-run"
  display_name = "Clarity API (${var.environment})"
}

resource "google_project_iam_member" "run" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/cloudtrace.agent",
  ])

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.run.email}"
}
