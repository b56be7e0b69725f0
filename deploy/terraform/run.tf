# The Cloud Run service. Terraform owns its configuration; scripts/deploy.sh
# owns which image runs and where traffic goes (see lifecycle below).

locals {
  plain_env = {
    ENVIRONMENT              = var.environment
    HOST                     = "0.0.0.0"
    LOG_LEVEL                = var.log_level
    CORS_ORIGINS             = jsonencode(var.cors_origins)
    GOOGLE_CLOUD_PROJECT     = var.project_id
    GOOGLE_CLOUD_REGION      = var.region
    CLOUD_RUN_SERVICE        = var.service_name
    FIREBASE_PROJECT_ID      = var.firebase_project_id
    OIDC_JWKS_URL            = var.firebase_jwks_url
    ACTIGRAPHY_MODEL_VERSION = var.actigraphy_model_version
    SHUTDOWN_GRACE_SECONDS   = "8"
    LOG_FORMAT               = "json"
    HEALTH_CANARY_SECONDS    = "300"
  }
}

resource "google_cloud_run_v2_service" "api" {
  name     = var.service_name
  location = var.region
  # Not public: only the load balancer (lb.tf) reaches it.
  ingress = var.public ? "INGRESS_TRAFFIC_ALL" : "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
  labels  = local.labels

  template {
    service_account                  = google_service_account.run.email
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"
    max_instance_request_concurrency = var.concurrency
    timeout                          = "300s"

    scaling {
      min_instance_count = var.min_instances
      max_instance_count = var.max_instances
    }

    vpc_access {
      egress = "PRIVATE_RANGES_ONLY"
      network_interfaces {
        network    = google_compute_network.main.id
        subnetwork = google_compute_subnetwork.main.id
      }
    }

    containers {
      name  = "clarity"
      image = var.image

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = var.cpu
          memory = var.memory
        }
        cpu_idle          = true
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = local.plain_env
        content {
          name  = env.key
          value = env.value
        }
      }

      # Secrets as files: NAME_FILE=/secrets/<secret id>/value.
      dynamic "env" {
        for_each = local.mounted_secrets
        content {
          name  = "${env.key}_FILE"
          value = "/secrets/${env.value}/value"
        }
      }

      dynamic "volume_mounts" {
        for_each = local.mounted_secrets
        content {
          name       = volume_mounts.value
          mount_path = "/secrets/${volume_mounts.value}"
        }
      }

      # Readiness turns 503 while starting and draining; liveness only
      # says that the process still serves.
      startup_probe {
        http_get {
          path = "/readiness"
        }
        initial_delay_seconds = 0
        period_seconds        = 2
        timeout_seconds       = 2
        failure_threshold     = 30
      }

      liveness_probe {
        http_get {
          path = "/liveness"
        }
        period_seconds    = 15
        timeout_seconds   = 3
        failure_threshold = 3
      }
    }

    # Google-Built OpenTelemetry Collector: scrapes /metrics inside the
    # instance (with METRICS_TOKEN) and writes to Managed Prometheus.
    containers {
      name       = "otel-collector"
      image      = var.otel_collector_image
      args       = ["--config=/etc/otelcol/config.yaml"]
      depends_on = ["clarity"]

      resources {
        limits = {
          cpu    = "1"
          memory = "512Mi"
        }
        cpu_idle = true
      }

      volume_mounts {
        name       = "otel-config"
        mount_path = "/etc/otelcol"
      }

      volume_mounts {
        name       = "clarity-metrics-token"
        mount_path = "/secrets/clarity-metrics-token"
      }
    }

    volumes {
      name = "otel-config"
      secret {
        secret = google_secret_manager_secret.otel_config.secret_id
        items {
          version = "latest"
          path    = "config.yaml"
        }
      }
    }

    dynamic "volumes" {
      for_each = local.mounted_secrets
      content {
        name = volumes.value
        secret {
          secret = google_secret_manager_secret.app[volumes.key].secret_id
          items {
            version = "latest"
            path    = "value"
          }
        }
      }
    }
  }

  traffic {
    type    = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
    percent = 100
  }

  lifecycle {
    precondition {
      condition     = var.public || var.api_domain != ""
      error_message = "A service that is not public needs api_domain: the load balancer is the only way in."
    }

    # Deploys change the image, revision names, tags and traffic split.
    ignore_changes = [
      template[0].containers[0].image,
      template[0].revision,
      traffic,
      client,
      client_version,
    ]
  }

  depends_on = [
    google_project_service.apis,
    google_secret_manager_secret_iam_member.run,
    google_secret_manager_secret_version.database_url,
    google_secret_manager_secret_version.metrics_token,
    google_secret_manager_secret_version.otel_config,
  ]
}

# Development and staging: anyone may call (the API authenticates its own
# users). Production: ingress admits only the load balancer, whose backend
# calls need the invoker role, so it is granted too; the run.app URL itself
# answers 404 to the internet (docs/deployment.md, "Production access").
resource "google_cloud_run_v2_service_iam_member" "public" {
  count = var.public || var.api_domain != "" ? 1 : 0

  name     = google_cloud_run_v2_service.api.name
  location = google_cloud_run_v2_service.api.location
  role     = "roles/run.invoker"
  member   = "allUsers"
}
