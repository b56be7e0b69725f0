/*
 * probes.h — platform probes and metrics: /health, /readiness, /liveness,
 * /metrics (API.md "Operations").
 */
#ifndef CLARITY_API_PROBES_H
#define CLARITY_API_PROBES_H

#include "http/router.h"

/* Register the probe routes. Returns 0 or -1 when the router is full. */
int api_probes_register(struct router *r);

#endif
