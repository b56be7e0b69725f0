/*
 * seed.h — `clarity seed-demo`: demo accounts and a month of realistic
 * HealthKit data through a development or staging server's API (seed.c).
 */
#ifndef CLARITY_CLI_SEED_H
#define CLARITY_CLI_SEED_H

int cli_seed_demo(int argc, char **argv);

#endif
