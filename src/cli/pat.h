/*
 * pat.h — `clarity pat`: the PAT encoder from the command line.
 *
 *   clarity pat info FILE [--sha256 HEX]
 *   clarity pat embed --model FILE --input MINUTES.csv [--sha256 HEX]
 *                     [--std none|global:MEAN:STD|per-minute:FILE]
 *                     [--head NAME=FILE]... [--attention] [--tokens]
 *                     [--threads N]
 *
 * Both print one JSON object on stdout. Exit statuses: 0 success, 1 failure
 * (unreadable or invalid weights or input, checksum mismatch), 2 usage
 * error. Details: docs/pat.md.
 */
#ifndef CLARITY_CLI_PAT_H
#define CLARITY_CLI_PAT_H

/* argv[0] is "pat". */
int cli_pat(int argc, char **argv);

#endif
