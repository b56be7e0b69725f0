# Cloud SQL for PostgreSQL 15: private address only, TLS required, CMEK,
# automated backups with point-in-time recovery.

resource "google_sql_database_instance" "main" {
  name                = "clarity-${var.env_short}"
  region              = var.region
  database_version    = "POSTGRES_15"
  encryption_key_name = google_kms_crypto_key.data.id
  deletion_protection = var.deletion_protection

  settings {
    tier              = var.db_tier
    availability_type = var.db_availability_type
    disk_type         = "PD_SSD"
    disk_size         = var.db_disk_size_gb
    disk_autoresize   = true
    user_labels       = local.labels

    ip_configuration {
      ipv4_enabled    = false
      private_network = google_compute_network.main.id
      ssl_mode        = "ENCRYPTED_ONLY"
    }

    backup_configuration {
      enabled                        = true
      start_time                     = "03:00"
      point_in_time_recovery_enabled = true
      transaction_log_retention_days = 7

      backup_retention_settings {
        retained_backups = var.db_backup_retention
        retention_unit   = "COUNT"
      }
    }

    maintenance_window {
      day          = 7
      hour         = 4
      update_track = "stable"
    }

    insights_config {
      query_insights_enabled = true
    }

    database_flags {
      name  = "log_min_duration_statement"
      value = "1000"
    }
  }

  depends_on = [
    google_service_networking_connection.sql,
    google_kms_crypto_key_iam_member.sql_agent,
  ]
}

resource "google_sql_database" "clarity" {
  name     = "clarity"
  instance = google_sql_database_instance.main.name
}

resource "random_password" "db" {
  length  = 32
  special = false
}

resource "google_sql_user" "clarity" {
  name     = "clarity"
  instance = google_sql_database_instance.main.name
  password = random_password.db.result
}
