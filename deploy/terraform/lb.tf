# The HTTPS load balancer in front of the service where the run.app URL is
# closed (public = false: production). The iOS app and the web app call
# https://<api_domain>; the canary gate of scripts/deploy.sh reads the
# candidate revision at https://candidate.<api_domain>, a second backend on
# the revision tag "candidate". Cloud Armor limits each client address
# before a request reaches an instance.

locals {
  lb               = var.api_domain != "" ? 1 : 0
  candidate_domain = "candidate.${var.api_domain}"
}

resource "google_compute_global_address" "api" {
  count = local.lb
  name  = "clarity-${var.env_short}-api"
}

resource "google_compute_managed_ssl_certificate" "api" {
  count = local.lb
  name  = "clarity-${var.env_short}-api"

  managed {
    domains = [var.api_domain, local.candidate_domain]
  }
}

resource "google_compute_region_network_endpoint_group" "api" {
  count                 = local.lb
  name                  = "clarity-${var.env_short}-api"
  region                = var.region
  network_endpoint_type = "SERVERLESS"

  cloud_run {
    service = google_cloud_run_v2_service.api.name
  }
}

resource "google_compute_region_network_endpoint_group" "candidate" {
  count                 = local.lb
  name                  = "clarity-${var.env_short}-candidate"
  region                = var.region
  network_endpoint_type = "SERVERLESS"

  cloud_run {
    service = google_cloud_run_v2_service.api.name
    tag     = "candidate"
  }
}

resource "google_compute_security_policy" "api" {
  count = local.lb
  name  = "clarity-${var.env_short}-api"

  rule {
    action   = "throttle"
    priority = 1000
    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }
    rate_limit_options {
      conform_action = "allow"
      exceed_action  = "deny(429)"
      enforce_on_key = "IP"
      rate_limit_threshold {
        count        = 600
        interval_sec = 60
      }
    }
  }

  rule {
    action   = "allow"
    priority = 2147483647
    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }
  }
}

resource "google_compute_backend_service" "api" {
  count                 = local.lb
  name                  = "clarity-${var.env_short}-api"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  protocol              = "HTTPS"
  security_policy       = google_compute_security_policy.api[0].id

  backend {
    group = google_compute_region_network_endpoint_group.api[0].id
  }
}

resource "google_compute_backend_service" "candidate" {
  count                 = local.lb
  name                  = "clarity-${var.env_short}-candidate"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  protocol              = "HTTPS"
  security_policy       = google_compute_security_policy.api[0].id

  backend {
    group = google_compute_region_network_endpoint_group.candidate[0].id
  }
}

resource "google_compute_url_map" "api" {
  count           = local.lb
  name            = "clarity-${var.env_short}-api"
  default_service = google_compute_backend_service.api[0].id

  host_rule {
    hosts        = [local.candidate_domain]
    path_matcher = "candidate"
  }

  path_matcher {
    name            = "candidate"
    default_service = google_compute_backend_service.candidate[0].id
  }
}

resource "google_compute_target_https_proxy" "api" {
  count            = local.lb
  name             = "clarity-${var.env_short}-api"
  url_map          = google_compute_url_map.api[0].id
  ssl_certificates = [google_compute_managed_ssl_certificate.api[0].id]
}

resource "google_compute_global_forwarding_rule" "api" {
  count                 = local.lb
  name                  = "clarity-${var.env_short}-api"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  target                = google_compute_target_https_proxy.api[0].id
  ip_address            = google_compute_global_address.api[0].address
  port_range            = "443"
}
