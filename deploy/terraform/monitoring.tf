# Monitoring as code: what the service exposes on /metrics (docs/operations.md,
# "Metrics") reaches Google Managed Prometheus through the collector sidecar
# (run.tf), and the alert policies below query it with PromQL. Logs give two
# log-based metrics (errors, container exits). Every policy notifies the
# channels in var.notification_channels plus, when set, var.alert_email.

locals {
  service_filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${var.service_name}\""

  notification_channels = concat(
    var.notification_channels,
    [for c in google_monitoring_notification_channel.email : c.id],
  )

  # The host uptime checks call: the load balancer's domain where the
  # service is reachable only through it, else the run.app host.
  uptime_host = var.api_domain != "" ? var.api_domain : trimprefix(google_cloud_run_v2_service.api.uri, "https://")

  # name => [PromQL, duration, documentation]
  prometheus_alerts = {
    "5xx-rate" = [
      "sum(rate(clarity_http_requests_total{status=~\"5..\"}[5m])) / sum(rate(clarity_http_requests_total[5m])) > 0.01",
      "300s",
      "More than 1 % of requests answered 5xx over 5 minutes. See docs/operations.md, \"Alerts\".",
    ]
    "p99-latency" = [
      "histogram_quantile(0.99, sum by (le) (rate(clarity_http_request_duration_seconds_bucket[5m]))) > 1",
      "300s",
      "The 99th percentile request latency exceeded 1 s over 5 minutes.",
    ]
    "queue-oldest-age" = [
      "max by (topic) (clarity_queue_oldest_age_seconds) > 900",
      "300s",
      "A pipeline message has waited more than 15 minutes: workers are stuck or too few.",
    ]
    "dead-letters" = [
      "max by (topic) (clarity_queue_dead_letters) > 0",
      "60s",
      "Messages reached a dead-letter topic; inspect and replay them (docs/operations.md).",
    ]
    "key-age" = [
      "max(clarity_encryption_key_age_seconds) > 7776000",
      "3600s",
      "The active encryption key is older than 90 days: run `clarity keys rotate`.",
    ]
    "queue-stats-down" = [
      "min(clarity_queue_stats_up) < 1",
      "300s",
      "The queue gauges could not be read from the database.",
    ]
  }
}

resource "google_monitoring_notification_channel" "email" {
  count = var.alert_email != "" ? 1 : 0

  display_name = "Clarity ${var.env_short} on-call"
  type         = "email"

  labels = {
    email_address = var.alert_email
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "prometheus" {
  for_each = local.prometheus_alerts

  display_name          = "Clarity ${var.env_short}: ${each.key}"
  combiner              = "OR"
  notification_channels = local.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = each.key
    condition_prometheus_query_language {
      query    = each.value[0]
      duration = each.value[1]
    }
  }

  documentation {
    content   = each.value[2]
    mime_type = "text/markdown"
  }

  depends_on = [google_project_service.apis]
}

# --- Logs: errors the service logged, and containers that exited (crash or
# restart). Clarity logs one JSON object per line; Cloud Run puts it in
# jsonPayload.

resource "google_logging_metric" "errors" {
  name   = "clarity-${var.env_short}-errors"
  filter = "${local.service_filter} AND jsonPayload.level=\"ERROR\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
}

resource "google_logging_metric" "container_exits" {
  name   = "clarity-${var.env_short}-container-exits"
  filter = "${local.service_filter} AND (textPayload:\"Container called exit\" OR textPayload:\"container exited\" OR textPayload:\"Uncaught signal\")"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
}

resource "google_monitoring_alert_policy" "errors" {
  display_name          = "Clarity ${var.env_short}: logged errors"
  combiner              = "OR"
  notification_channels = local.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "ERROR log lines"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.errors.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 10
      duration        = "300s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_SUM"
      }
    }
  }
}

resource "google_monitoring_alert_policy" "instance_restarts" {
  display_name          = "Clarity ${var.env_short}: instance restarts"
  combiner              = "OR"
  notification_channels = local.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "container exits"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.container_exits.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 2
      duration        = "0s"
      aggregations {
        alignment_period   = "900s"
        per_series_aligner = "ALIGN_SUM"
      }
    }
  }

  documentation {
    content   = "Instances exited more than twice in 15 minutes (crash loop, out of memory, failed start-up probe)."
    mime_type = "text/markdown"
  }
}

# --- Uptime: /health from three regions. Outside production the body has
# the checks; production answers anonymous callers with the status only,
# which is all the check matches.

resource "google_monitoring_uptime_check_config" "health" {
  display_name = "Clarity ${var.env_short} /health"
  timeout      = "10s"
  period       = "60s"

  http_check {
    path         = "/health"
    port         = 443
    use_ssl      = true
    validate_ssl = true
  }

  monitored_resource {
    type = "uptime_url"

    labels = {
      project_id = var.project_id
      host       = local.uptime_host
    }
  }

  content_matchers {
    content = "\"status\":\"healthy\""
    matcher = "CONTAINS_STRING"
  }

  checker_type     = "STATIC_IP_CHECKERS"
  selected_regions = ["USA", "EUROPE", "ASIA_PACIFIC"]
}

resource "google_monitoring_alert_policy" "uptime" {
  display_name          = "Clarity ${var.env_short}: /health failing"
  combiner              = "OR"
  notification_channels = local.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "uptime check"
    condition_threshold {
      filter          = "metric.type=\"monitoring.googleapis.com/uptime_check/check_passed\" AND resource.type=\"uptime_url\" AND metric.label.check_id=\"${google_monitoring_uptime_check_config.health.uptime_check_id}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 1
      duration        = "120s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_NEXT_OLDER"
        cross_series_reducer = "REDUCE_COUNT_FALSE"
        group_by_fields      = ["resource.label.host"]
      }
    }
  }
}

# --- One dashboard: traffic, errors, latency, queues, keys, PAT.

locals {
  # [title, PromQL]
  dashboard_tiles = [
    ["Requests per second by status", "sum by (status) (rate(clarity_http_requests_total[5m]))"],
    ["5xx share", "sum(rate(clarity_http_requests_total{status=~\"5..\"}[5m])) / sum(rate(clarity_http_requests_total[5m]))"],
    ["p99 latency (s) by route", "histogram_quantile(0.99, sum by (le, route) (rate(clarity_http_request_duration_seconds_bucket[5m])))"],
    ["Queue depth", "sum by (topic) (clarity_queue_depth)"],
    ["Oldest message age (s)", "max by (topic) (clarity_queue_oldest_age_seconds)"],
    ["Dead letters", "max by (topic) (clarity_queue_dead_letters)"],
    ["Encryption key age (days)", "max(clarity_encryption_key_age_seconds) / 86400"],
    ["PAT inferences per second", "sum(rate(clarity_pat_inferences_total[5m]))"],
    ["Resident memory (bytes)", "max by (instance) (process_resident_memory_bytes)"],
  ]
}

resource "google_monitoring_dashboard" "main" {
  dashboard_json = jsonencode({
    displayName = "Clarity ${var.env_short}"

    gridLayout = {
      columns = 2
      widgets = [for tile in local.dashboard_tiles : {
        title   = tile[0]
        xyChart = { dataSets = [{ prometheusQuery = tile[1], plotType = "LINE" }] }
      }]
    }
  })

  depends_on = [google_project_service.apis]
}
