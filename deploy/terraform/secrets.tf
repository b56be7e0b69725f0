# Secret Manager: the service reads each secret as a mounted file
# (NAME_FILE, docs/configuration.md). Terraform creates the secrets and grants
# access; values other than the database URL are added out of band:
#
#   gcloud secrets versions add clarity-jwt-private-key --data-file=key.pem

locals {
  # Clarity variable => Secret Manager secret id.
  secrets = {
    DATABASE_URL    = "clarity-database-url"
    JWT_PRIVATE_KEY = "clarity-jwt-private-key"
    ENCRYPTION_KEY  = "clarity-encryption-key"
    GEMINI_API_KEY  = "clarity-gemini-api-key"
    METRICS_TOKEN   = "clarity-metrics-token"
  }

  # Every secret exists; the Gemini key is mounted only when the LLM insight
  # generator is used, since a secret without a version stops a revision
  # from starting.
  mounted_secrets = {
    for name, id in local.secrets : name => id if name != "GEMINI_API_KEY" || var.use_gemini
  }
}

resource "google_secret_manager_secret" "app" {
  for_each = local.secrets

  secret_id = each.value
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_iam_member" "run" {
  for_each = local.secrets

  secret_id = google_secret_manager_secret.app[each.key].id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.run.email}"
}

# The database URL is the one secret Terraform knows (it made the password).
# The state therefore holds it: keep the state bucket private.
resource "google_secret_manager_secret_version" "database_url" {
  secret      = google_secret_manager_secret.app["DATABASE_URL"].id
  secret_data = "postgres://${google_sql_user.clarity.name}:${random_password.db.result}@${google_sql_database_instance.main.private_ip_address}:5432/${google_sql_database.clarity.name}?sslmode=require"
}

# The bearer token /metrics and /health's details need (docs/operations.md).
# The collector sidecar reads the same mounted file; scripts/deploy.sh reads
# it from Secret Manager for the canary gate.
resource "random_password" "metrics_token" {
  length  = 40
  special = false
}

resource "google_secret_manager_secret_version" "metrics_token" {
  secret      = google_secret_manager_secret.app["METRICS_TOKEN"].id
  secret_data = random_password.metrics_token.result
}

# The collector's configuration, mounted as a file into the sidecar.
resource "google_secret_manager_secret" "otel_config" {
  secret_id = "clarity-otel-collector-config"
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "otel_config" {
  secret      = google_secret_manager_secret.otel_config.id
  secret_data = file("${path.module}/otel-collector.yaml")
}

resource "google_secret_manager_secret_iam_member" "otel_config" {
  secret_id = google_secret_manager_secret.otel_config.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.run.email}"
}
