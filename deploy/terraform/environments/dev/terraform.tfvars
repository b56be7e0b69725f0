# Development: the deployment guide's small size (1 CPU, 1 GiB, 80, 10).
project_id   = "clarity-loop-dev"
region       = "us-central1"
environment  = "development"
env_short    = "dev"
service_name = "clarity-backend-dev"

cpu           = "1"
memory        = "1Gi"
concurrency   = 80
min_instances = 0
max_instances = 10

log_level           = "DEBUG"
cors_origins        = ["http://localhost:3000", "http://localhost:8080"]
firebase_project_id = "clarity-loop-dev"

db_tier              = "db-custom-1-3840"
db_availability_type = "ZONAL"
db_disk_size_gb      = 10
db_backup_retention  = 7
deletion_protection  = false

backup_bucket_retention_days = 14
