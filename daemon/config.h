/*
 * Configuration: where the daemon's hs_config_t comes from.
 *
 * hs_config_init() (declared in hubstream.h) gives the defaults; hs_cli_parse() layers on them,
 * in increasing precedence, a config file (`--config FILE` or HUBSTREAM_CONFIG), HUBSTREAM_*
 * environment variables and command-line flags, checking every value on the way. The listen
 * address helpers live here too, because the parser validates `--listen` with them.
 *
 * This module only reads and checks settings. It does not act on them: refusing a non-loopback
 * address without --allow-anonymous, printing the version, exiting on --help and resolving "0
 * threads = one per core" are the caller's job. It keeps no global state and never exits.
 */
#ifndef HS_SERVER_CONFIG_H
#define HS_SERVER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "hubstream/hubstream.h"
#include "util/addr.h"

/* Strings hs_cli_t owns: cfg.listen, cfg.db, config_file and cfg.retention. */
#define HS_CLI_NOWNED 14

/*
 * The result of parsing a command line. cfg's strings point into `owned` (or at static
 * defaults), so cfg stays valid until hs_cli_dispose().
 */
typedef struct hs_cli {
    hs_config_t cfg;
    bool help;                  /* --help or -h was given: print hs_cli_usage() and exit */
    bool version;               /* --version was given: print the version and exit */
    const char *config_file;    /* the config file that was read, or NULL */
    char *owned[HS_CLI_NOWNED]; /* heap copies that cfg and config_file point to */
} hs_cli_t;

/*
 * Fills *cli from defaults, then the config file named by the last `--config` flag (or, without
 * one, by HUBSTREAM_CONFIG), then HUBSTREAM_<FLAG> environment variables (flag name upper-cased,
 * `-` turned into `_`; an empty variable counts as unset), then the flags in argv[1..argc-1].
 * Flags take `--flag value` or `--flag=value`; --allow-anonymous alone means true.
 *
 * If --help or --version is among the flags, only the flags' syntax is checked: the file, the
 * environment and the flag values are not read, cli->cfg keeps the defaults and 0 is returned.
 *
 * Returns 0, HS_EINVAL (unknown flag or key, missing or bad value, unreadable config file) or
 * HS_ENOMEM; on failure writes a message naming the culprit and its source into err (at most
 * errlen bytes, NUL-terminated; err may be NULL). *cli need not be initialised; whatever the
 * result, release it with hs_cli_dispose().
 */
int hs_cli_parse(hs_cli_t *cli, int argc, char **argv, char *err, size_t errlen);

/* Frees the strings *cli owns and puts the defaults back into cli->cfg. Idempotent. */
void hs_cli_dispose(hs_cli_t *cli);

/* Writes the --help text (every flag with its variable, default and meaning) to out. */
void hs_cli_usage(FILE *out);

#endif
