# Clarity on Google Cloud: one root module, one state per environment.
#
#   terraform init -backend-config=environments/prod/backend.hcl
#   terraform plan -var-file=environments/prod/terraform.tfvars
#
# See docs/deployment.md. Validated with `terraform validate` only where
# Terraform is installed; the repository's tests check formatting and syntax.

terraform {
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 5.40"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 5.40"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }

  # Partial configuration: bucket and prefix come from
  # environments/<env>/backend.hcl, so that environments never share state.
  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region
}

provider "google-beta" {
  project = var.project_id
  region  = var.region
}
