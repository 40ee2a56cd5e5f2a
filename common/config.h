/* common/config.h - table-driven options: command-line flags and INI config files. */
#ifndef RT_CONFIG_H
#define RT_CONFIG_H

#include <stddef.h>

#include "rt.h"

typedef enum {
    RT_CFG_STR,  /* char * (malloc'd copy) */
    RT_CFG_INT,  /* int64_t, within [min, max] */
    RT_CFG_BOOL, /* bool: true/false/on/off/yes/no/1/0 */
    RT_CFG_ENUM  /* int64_t index into the NULL-terminated choices list */
} rt_cfg_type_t;

/* One option. The flag is "--" + key; the INI key is key with '-' written as '_'
 * (both spellings are accepted in the file). */
typedef struct {
    const char *key; /* e.g. "source", "batch-bytes" */
    rt_cfg_type_t type;
    size_t offset;              /* offsetof the field in the options struct */
    const char *def;            /* default as text, or NULL for none */
    int64_t min, max;           /* RT_CFG_INT bounds (both 0: no bounds) */
    const char *const *choices; /* RT_CFG_ENUM words */
    bool required;              /* must be set by a flag or the file */
    const char *help;           /* one line for --help */
    bool reloadable;            /* a new value in the file applies on SIGHUP, while running */
} rt_cfg_param_t;

/* One row of an options table whose struct is S: RT_CFG_OPT(S, "key", RT_CFG_INT, field,
 * "default", min, max, choices, required, reloadable, "help"). */
#define RT_CFG_OPT(S, k, t, f, d, lo, hi, ch, req, rel, h)                                         \
    {                                                                                              \
        .key = (k), .type = (t), .offset = offsetof(S, f), .def = (d), .min = (lo), .max = (hi),   \
        .choices = (ch), .required = (req), .help = (h), .reloadable = (rel)                       \
    }

/* Fills opts from defaults, then the file named by --config (if the table has a
 * "config" RT_CFG_STR key and it was given), then the flags, which win. --help prints
 * usage and every option to stdout. Errors go to stderr naming the flag, or the
 * file, line and key, and the bad value.
 * Returns 0 ok, 1 when --help or --version was printed (exit 0), RT_EINVAL on any error
 * (unknown flag or key, missing value, bad value, out of bounds, missing required). */
int rt_config_load(const rt_cfg_param_t *table, size_t n, void *opts, int argc, char **argv,
                   const char *program, const char *summary) RT_WUR;

/* Re-reads only the file into opts (for SIGHUP); flags given at start are not
 * re-applied by this call. Only keys marked reloadable take the file's value; another
 * key whose value in the file differs from the running one is logged as a warning
 * ("applies at the next start") and left as it is. Nothing is applied when the file
 * has any error. Same errors as rt_config_load, logged. */
int rt_config_load_file(const rt_cfg_param_t *table, size_t n, void *opts, const char *path) RT_WUR;

/* Writes p's value in opts as text (an enum as its word, a bool as true/false, an unset
 * string as "") into buf; returns buf. */
const char *rt_config_value(const rt_cfg_param_t *p, const void *opts, char *buf, size_t size);

/* Frees the strings rt_config_load allocated in opts. */
void rt_config_free(const rt_cfg_param_t *table, size_t n, void *opts);

#endif
