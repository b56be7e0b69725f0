# Production: the deployment guide's large size (4 CPU, 4 GiB, 200, 100),
# a warm instance and a regional (high-availability) database.
project_id   = "clarity-loop-prod"
region       = "us-central1"
environment  = "production"
env_short    = "prod"
service_name = "clarity-backend"

cpu           = "4"
memory        = "4Gi"
concurrency   = 200
min_instances = 1
max_instances = 100

log_level           = "WARNING"
cors_origins        = ["https://app.clarity.example.com"]
firebase_project_id = "clarity-loop-prod"

# Not public: only the load balancer on api_domain reaches the service.
public     = false
api_domain = "api.clarity.example.com"

db_tier              = "db-custom-4-16384"
db_availability_type = "REGIONAL"
db_disk_size_gb      = 50
db_backup_retention  = 30
deletion_protection  = true

backup_bucket_retention_days = 90
