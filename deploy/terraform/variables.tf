variable "project_id" {
  description = "Google Cloud project of this environment."
  type        = string
}

variable "region" {
  description = "Region of every regional resource."
  type        = string
  default     = "us-central1"
}

variable "environment" {
  description = "Clarity's ENVIRONMENT: development, staging or production."
  type        = string

  validation {
    condition     = contains(["development", "staging", "production"], var.environment)
    error_message = "The environment must be development, staging or production."
  }
}

variable "env_short" {
  description = "Short name used in resource names: dev, staging or prod."
  type        = string
}

variable "service_name" {
  description = "Cloud Run service name (CLOUD_RUN_SERVICE)."
  type        = string
}

variable "image" {
  description = "Container image of the first revision. Later revisions are deployed by scripts/deploy.sh, which Terraform then leaves alone."
  type        = string
  default     = "us-docker.pkg.dev/cloudrun/container/hello"
}

variable "cpu" {
  description = "vCPUs per instance."
  type        = string
}

variable "memory" {
  description = "Memory per instance, e.g. 1Gi."
  type        = string
}

variable "concurrency" {
  description = "Maximum concurrent requests per instance."
  type        = number
}

variable "min_instances" {
  description = "Instances kept warm."
  type        = number
  default     = 0
}

variable "max_instances" {
  description = "Upper bound of autoscaling."
  type        = number
}

variable "log_level" {
  description = "LOG_LEVEL: DEBUG, INFO, WARNING or ERROR."
  type        = string
  default     = "INFO"
}

variable "cors_origins" {
  description = "CORS_ORIGINS: the browser origins allowed to call the API."
  type        = list(string)
  default     = []
}

variable "firebase_project_id" {
  description = "FIREBASE_PROJECT_ID: audience of Firebase ID tokens (empty: Clarity's own tokens only)."
  type        = string
  default     = ""
}

variable "actigraphy_model_version" {
  description = "ACTIGRAPHY_MODEL_VERSION reported by /health and the PAT API."
  type        = string
  default     = "v1.0"
}

variable "use_gemini" {
  description = "Mount GEMINI_API_KEY (add a version to clarity-gemini-api-key first)."
  type        = bool
  default     = false
}

variable "public" {
  description = "true: the run.app URL takes traffic from anywhere (the API authenticates its own users). false: only the load balancer of lb.tf reaches the service (production)."
  type        = bool
  default     = true
}

variable "api_domain" {
  description = "Domain of the HTTPS load balancer in front of the service (lb.tf), e.g. api.clarity.example.com; empty: no load balancer. Required when public is false."
  type        = string
  default     = ""

  validation {
    condition     = var.api_domain == "" || can(regex("^[a-z0-9.-]+$", var.api_domain))
    error_message = "api_domain must be a bare domain name."
  }
}

variable "firebase_jwks_url" {
  description = "OIDC_JWKS_URL: Google's public keys for Firebase ID tokens (used when firebase_project_id is set)."
  type        = string
  default     = "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"
}

variable "otel_collector_image" {
  description = "The OpenTelemetry collector sidecar that scrapes /metrics into Google Managed Prometheus (pin a version you have checked)."
  type        = string
  default     = "us-docker.pkg.dev/cloud-ops-agents-artifacts/google-cloud-opentelemetry-collector/otelcol-google:0.121.0"
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channel ids every alert notifies (PagerDuty, Slack, ...)."
  type        = list(string)
  default     = []
}

variable "alert_email" {
  description = "Also notify this address (an email channel is created); empty: none."
  type        = string
  default     = ""
}

variable "db_tier" {
  description = "Cloud SQL machine tier."
  type        = string
}

variable "db_availability_type" {
  description = "ZONAL, or REGIONAL for a standby in a second zone."
  type        = string
  default     = "ZONAL"
}

variable "db_disk_size_gb" {
  description = "Initial disk size; the disk grows automatically."
  type        = number
  default     = 10
}

variable "db_backup_retention" {
  description = "Automated Cloud SQL backups kept."
  type        = number
  default     = 7
}

variable "deletion_protection" {
  description = "Refuse to destroy the database instance."
  type        = bool
  default     = true
}

variable "backup_bucket_retention_days" {
  description = "Days an exported backup (and each noncurrent version) is kept in the backups bucket."
  type        = number
  default     = 30
}

variable "subnet_cidr" {
  description = "Range of the subnet Cloud Run egresses through (Direct VPC egress)."
  type        = string
  default     = "10.8.0.0/24"
}
