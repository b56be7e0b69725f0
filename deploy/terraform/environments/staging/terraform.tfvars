# Staging: the deployment guide's middle size (2 CPU, 2 GiB, 100, 20).
project_id   = "clarity-loop-staging"
region       = "us-central1"
environment  = "staging"
env_short    = "staging"
service_name = "clarity-backend-staging"

cpu           = "2"
memory        = "2Gi"
concurrency   = 100
min_instances = 0
max_instances = 20

log_level           = "INFO"
cors_origins        = ["https://staging.clarity.example.com"]
firebase_project_id = "clarity-loop-staging"

db_tier              = "db-custom-2-7680"
db_availability_type = "ZONAL"
db_disk_size_gb      = 20
db_backup_retention  = 14
deletion_protection  = true

backup_bucket_retention_days = 30
