/*
 * main.c — parses the subcommand and hands over (src/cli/).
 */
#include "cli/cli.h"

int main(int argc, char **argv) { return cli_main(argc, argv); }
