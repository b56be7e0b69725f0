output "service_url" {
  description = "URL of the API: the load balancer's domain when there is one, else the run.app URL."
  value       = var.api_domain != "" ? "https://${var.api_domain}" : google_cloud_run_v2_service.api.uri
}

output "dashboard" {
  description = "The Cloud Monitoring dashboard."
  value       = "https://console.cloud.google.com/monitoring/dashboards/builder/${element(split("/", google_monitoring_dashboard.main.id), 3)}?project=${var.project_id}"
}

output "service_account" {
  description = "Identity of the service and the migration job (RUN_SERVICE_ACCOUNT of scripts/deploy.sh)."
  value       = google_service_account.run.email
}

output "image_repository" {
  description = "Where scripts/deploy.sh pushes images (REGISTRY)."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.clarity.repository_id}"
}

output "database_instance" {
  description = "Cloud SQL instance connection name."
  value       = google_sql_database_instance.main.connection_name
}

output "database_private_ip" {
  description = "Private address of the database."
  value       = google_sql_database_instance.main.private_ip_address
}

output "backups_bucket" {
  description = "Versioned, CMEK-encrypted bucket for exported backups."
  value       = google_storage_bucket.backups.url
}

output "kms_key" {
  description = "The 90-day-rotation data key (CMEK)."
  value       = google_kms_crypto_key.data.id
}

output "vpc_network" {
  description = "VPC_NETWORK and VPC_SUBNET of scripts/deploy.sh."
  value       = google_compute_subnetwork.main.name
}
