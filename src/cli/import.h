/*
 * import.h — `clarity import apple-health FILE --user EMAIL`.
 */
#ifndef CLARITY_CLI_IMPORT_H
#define CLARITY_CLI_IMPORT_H

/*
 * Import an Apple Health export (export.xml, or the export.zip the Health app
 * writes) for the user with that email, into the database named by
 * DATABASE_URL (opened as `serve` does: pending migrations applied in
 * development, refused elsewhere). One `uploads` row (source
 * "apple_health_export") follows the import: received → processing (progress
 * updated with every batch of samples, each batch its own transaction) →
 * completed, or failed with the reason. Re-importing the same export stores
 * nothing new (see ingest/apple_export.h, Deduplication). Prints a JSON
 * summary on stdout. argv[0] is "import". Exit 0 ok, 1 failure (no such
 * user, unreadable or malformed export, database), 2 usage.
 */
int cli_import(int argc, char **argv);

#endif
