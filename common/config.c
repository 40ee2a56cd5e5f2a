/* common/config.c - table-driven options: command-line flags and INI config files. */
#include "config.h"

#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * Flags: "--key VALUE", "--key=VALUE"; a RT_CFG_BOOL flag alone means true, and takes
 * the next argument only when it is a boolean word. A value that starts with "--" is
 * not taken as a value (write "--key=--x" for that). "-h" and "--help" print usage.
 *
 * File: one "key = value" per line; lines starting with '#' or ';' are comments;
 * "[section]" headers are accepted and ignored. An unquoted value runs to the end of
 * the line, less trailing blanks and a '#' or ';' comment preceded by a blank. A
 * double-quoted value keeps its blanks; inside it \" is a quote and \\ a backslash.
 *
 * Integers are plain decimal with an optional sign; a table entry with min and max
 * both 0 has no bounds. Booleans and enum words match without regard to case.
 *
 * rt_config_load overwrites every field without freeing it first (opts may hold
 * garbage); when it returns non-zero it has already freed the strings it set.
 * File errors from rt_config_load go to stderr as "program: ..."; those of
 * rt_config_load_file, which runs inside a live daemon, go to the log.
 */

#define S_MSG_MAX 1024

/* A converted value, not yet stored in the options struct. */
typedef union {
    int64_t i;
    bool b;
    char *s; /* owned until stored */
} s_value_t;

/* One assignment read from a file, applied only once the whole file parsed. */
typedef struct {
    size_t param;  /* index in the table */
    s_value_t val; /* converted value */
} s_entry_t;

/* Where error messages go: "program: ..." on stderr, or the log when program is NULL. */
static void s_report(const char *program, const char *fmt, ...) RT_PRINTF(2, 3);

static void s_report(const char *program, const char *fmt, ...)
{
    char msg[S_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (program)
        fprintf(stderr, "%s: %s\n", program, msg);
    else
        rt_error("%s", msg);
}

/* True when a and b (b of length blen) name the same key, '-' and '_' being equal. */
static bool s_key_eq(const char *a, const char *b, size_t blen)
{
    size_t i = 0;
    for (; i < blen && a[i]; i++) {
        char x = a[i] == '_' ? '-' : a[i];
        char y = b[i] == '_' ? '-' : b[i];
        if (x != y)
            return false;
    }
    return i == blen && a[i] == '\0';
}

/* Index of the key in the table, or n. */
static size_t s_find(const rt_cfg_param_t *table, size_t n, const char *key, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (s_key_eq(table[i].key, key, len))
            return i;
    return n;
}

static void *s_field(const rt_cfg_param_t *p, void *opts)
{
    return (char *)opts + p->offset;
}

static bool s_parse_int(const char *text, int64_t *out)
{
    if (!(isdigit((unsigned char)text[0]) ||
          ((text[0] == '+' || text[0] == '-') && isdigit((unsigned char)text[1]))))
        return false;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = (int64_t)v;
    return true;
}

static bool s_parse_bool(const char *text, bool *out)
{
    static const char *const yes[] = {"true", "on", "yes", "1"};
    static const char *const no[] = {"false", "off", "no", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* Writes "a, b, c" into buf. */
static void s_choices_list(const char *const *choices, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; choices && choices[i] && used < size; i++) {
        int k = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", choices[i]);
        if (k < 0)
            break;
        used += (size_t)k;
    }
}

/* Converts text for parameter p into *val. On RT_EINVAL, why holds the reason. */
static int s_convert(const rt_cfg_param_t *p, const char *text, s_value_t *val, char *why,
                     size_t why_size)
{
    switch (p->type) {
    case RT_CFG_STR: val->s = strdup(text); return val->s ? 0 : RT_ENOMEM;
    case RT_CFG_INT: {
        int64_t v;
        if (!s_parse_int(text, &v)) {
            snprintf(why, why_size, "value \"%s\" is not an integer", text);
            return RT_EINVAL;
        }
        bool bounded = p->min != 0 || p->max != 0;
        if (bounded && (v < p->min || v > p->max)) {
            snprintf(why, why_size, "value \"%s\" is out of range [%" PRId64 ", %" PRId64 "]", text,
                     p->min, p->max);
            return RT_EINVAL;
        }
        val->i = v;
        return 0;
    }
    case RT_CFG_BOOL:
        if (!s_parse_bool(text, &val->b)) {
            snprintf(why, why_size,
                     "value \"%s\" is not a boolean (true/false, on/off, yes/no, 1/0)", text);
            return RT_EINVAL;
        }
        return 0;
    case RT_CFG_ENUM:
        for (int64_t i = 0; p->choices && p->choices[i]; i++) {
            if (strcasecmp(text, p->choices[i]) == 0) {
                val->i = i;
                return 0;
            }
        }
        char list[512];
        s_choices_list(p->choices, list, sizeof list);
        snprintf(why, why_size, "value \"%s\" is not one of: %s", text, list);
        return RT_EINVAL;
    }
    snprintf(why, why_size, "unknown option type %d", (int)p->type);
    return RT_EINVAL;
}

/* Stores a converted value into its field, taking ownership of a string. */
static void s_store(const rt_cfg_param_t *p, void *opts, s_value_t *val)
{
    void *field = s_field(p, opts);
    switch (p->type) {
    case RT_CFG_STR: {
        char **sp = field;
        free(*sp);
        *sp = val->s;
        val->s = NULL;
        break;
    }
    case RT_CFG_INT:
    case RT_CFG_ENUM: *(int64_t *)field = val->i; break;
    case RT_CFG_BOOL: *(bool *)field = val->b; break;
    }
}

/* True when val is the value opts holds for p. */
static bool s_same(const rt_cfg_param_t *p, void *opts, const s_value_t *val)
{
    void *field = s_field(p, opts);
    switch (p->type) {
    case RT_CFG_STR: {
        const char *cur = *(char **)field;
        return cur && val->s ? strcmp(cur, val->s) == 0 : cur == val->s;
    }
    case RT_CFG_INT:
    case RT_CFG_ENUM: return *(int64_t *)field == val->i;
    case RT_CFG_BOOL: return *(bool *)field == val->b;
    }
    return false;
}

/* Converts and stores in one step; reports errors as "<what>: <why>". */
static int s_set(const rt_cfg_param_t *p, void *opts, const char *text, const char *program,
                 const char *what)
{
    char why[S_MSG_MAX];
    s_value_t val;
    int rc = s_convert(p, text, &val, why, sizeof why);
    if (rc == RT_ENOMEM) {
        s_report(program, "%s: out of memory", what);
        return rc;
    }
    if (rc != 0) {
        s_report(program, "%s: %s", what, why);
        return rc;
    }
    s_store(p, opts, &val);
    return 0;
}

static void s_entries_free(const rt_cfg_param_t *table, s_entry_t *entries, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (table[entries[i].param].type == RT_CFG_STR)
            free(entries[i].val.s);
    free(entries);
}

static char *s_trim_right(char *s, char *end)
{
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    *end = '\0';
    return s;
}

static char *s_skip_blanks(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    return s;
}

/* Reads the value that starts at v in place; *why names a syntax error. */
static char *s_ini_value(char *v, const char **why)
{
    if (*v != '"') {
        char *end = v + strlen(v);
        for (char *c = v + 1; c < end; c++) {
            if ((*c == '#' || *c == ';') && isspace((unsigned char)c[-1])) {
                end = c;
                break;
            }
        }
        if (*v == '#' || *v == ';')
            end = v;
        return s_trim_right(v, end);
    }
    char *out = v;
    char *in = v + 1;
    for (;;) {
        if (*in == '\0') {
            *why = "unterminated quoted value";
            return NULL;
        }
        if (*in == '"')
            break;
        if (*in == '\\') {
            if (in[1] != '"' && in[1] != '\\') {
                *why = "invalid escape in quoted value (only \\\" and \\\\)";
                return NULL;
            }
            in++;
        }
        *out++ = *in++;
    }
    *out = '\0';
    char *rest = s_skip_blanks(in + 1);
    if (*rest != '\0' && *rest != '#' && *rest != ';') {
        *why = "unexpected text after quoted value";
        return NULL;
    }
    return v;
}

/*
 * Parses the file into converted entries without touching opts. given (may be NULL)
 * marks the options the file set. Errors are reported through program (see s_report).
 */
static int s_parse_file(const rt_cfg_param_t *table, size_t n, const char *path,
                        const char *program, s_entry_t **entries_out, size_t *count_out,
                        bool *given)
{
    s_entry_t *entries = NULL;
    size_t count = 0, cap = 0;
    char *line = NULL;
    size_t line_cap = 0;
    unsigned lineno = 0;
    int rc = 0;

    FILE *f = fopen(path, "r");
    if (!f) {
        s_report(program, "cannot read config file \"%s\": %s", path, strerror(errno));
        return RT_EINVAL;
    }
    for (;;) {
        errno = 0;
        ssize_t len = getline(&line, &line_cap, f);
        if (len < 0) {
            if (ferror(f)) {
                s_report(program, "cannot read config file \"%s\": %s", path,
                         strerror(errno ? errno : EIO));
                rc = RT_EINVAL;
            }
            break;
        }
        lineno++;
        if ((size_t)len != strlen(line)) {
            s_report(program, "%s:%u: unexpected NUL byte", path, lineno);
            rc = RT_EINVAL;
            break;
        }
        char *s = s_skip_blanks(s_trim_right(line, line + len));
        if (*s == '\0' || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (!close || *s_skip_blanks(close + 1) != '\0') {
                s_report(program, "%s:%u: expected \"[section]\"", path, lineno);
                rc = RT_EINVAL;
                break;
            }
            continue;
        }
        char *eq = strchr(s, '=');
        char *key_end = eq ? eq : s;
        while (key_end > s && isspace((unsigned char)key_end[-1]))
            key_end--;
        bool key_ok = key_end > s;
        for (char *c = s; c < key_end; c++)
            if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_')
                key_ok = false;
        if (!eq || !key_ok) {
            s_report(program, "%s:%u: expected \"key = value\"", path, lineno);
            rc = RT_EINVAL;
            break;
        }
        *key_end = '\0';
        const char *key = s;
        size_t idx = s_find(table, n, key, strlen(key));
        if (idx == n) {
            s_report(program, "%s:%u: unknown key \"%s\"", path, lineno, key);
            rc = RT_EINVAL;
            break;
        }
        const char *syntax = NULL;
        char *value = s_ini_value(s_skip_blanks(eq + 1), &syntax);
        if (!value) {
            s_report(program, "%s:%u: key \"%s\": %s", path, lineno, key, syntax);
            rc = RT_EINVAL;
            break;
        }
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            s_entry_t *grown = realloc(entries, ncap * sizeof *grown);
            if (!grown) {
                s_report(program, "%s:%u: out of memory", path, lineno);
                rc = RT_ENOMEM;
                break;
            }
            entries = grown;
            cap = ncap;
        }
        char why[S_MSG_MAX];
        rc = s_convert(&table[idx], value, &entries[count].val, why, sizeof why);
        if (rc != 0) {
            if (rc == RT_ENOMEM)
                s_report(program, "%s:%u: key \"%s\": out of memory", path, lineno, key);
            else
                s_report(program, "%s:%u: key \"%s\": %s", path, lineno, key, why);
            break;
        }
        entries[count++].param = idx;
        if (given)
            given[idx] = true;
    }
    free(line);
    fclose(f);
    if (rc != 0) {
        s_entries_free(table, entries, count);
        return rc;
    }
    *entries_out = entries;
    *count_out = count;
    return 0;
}

/* Applies parsed entries in file order (later lines win); cannot fail. */
static void s_apply_entries(const rt_cfg_param_t *table, void *opts, s_entry_t *entries,
                            size_t count)
{
    for (size_t i = 0; i < count; i++)
        s_store(&table[entries[i].param], opts, &entries[i].val);
}

static const char *s_placeholder(const rt_cfg_param_t *p)
{
    if (strcmp(p->key, "config") == 0)
        return "FILE";
    switch (p->type) {
    case RT_CFG_INT: return "N";
    case RT_CFG_BOOL: return "[BOOL]";
    case RT_CFG_ENUM: return "WORD";
    case RT_CFG_STR: break;
    }
    return "VALUE";
}

static void s_help(const rt_cfg_param_t *table, size_t n, const char *program, const char *summary)
{
    size_t width = strlen("-h, --help");
    for (size_t i = 0; i < n; i++) {
        size_t w = 2 + strlen(table[i].key) + 1 + strlen(s_placeholder(&table[i]));
        if (w > width)
            width = w;
    }
    printf("Usage: %s [OPTIONS]\n", program);
    if (summary && *summary)
        printf("%s\n", summary);
    printf("\nOptions:\n");
    for (size_t i = 0; i < n; i++) {
        const rt_cfg_param_t *p = &table[i];
        char flag[256];
        snprintf(flag, sizeof flag, "--%s %s", p->key, s_placeholder(p));
        printf("  %-*s  %s", (int)width, flag, p->help ? p->help : "");
        if (p->type == RT_CFG_ENUM) {
            char list[512];
            s_choices_list(p->choices, list, sizeof list);
            printf(" (one of: %s)", list);
        }
        if (p->type == RT_CFG_INT && (p->min != 0 || p->max != 0))
            printf(" [%" PRId64 "..%" PRId64 "]", p->min, p->max);
        if (p->required)
            printf(" (required)");
        else if (p->def)
            printf(" (default: %s)", p->def);
        printf("\n");
    }
    printf("  %-*s  %s\n", (int)width, "-h, --help", "show this help and exit");
    printf("  %-*s  %s\n", (int)width, "--version", "print the version and git revision, and exit");
    fflush(stdout);
}

/* Sets every field to its default (or zero/NULL) without freeing what was there. */
static int s_defaults(const rt_cfg_param_t *table, size_t n, void *opts, const char *program)
{
    for (size_t i = 0; i < n; i++) {
        const rt_cfg_param_t *p = &table[i];
        void *field = s_field(p, opts);
        switch (p->type) {
        case RT_CFG_STR: *(char **)field = NULL; break;
        case RT_CFG_INT:
        case RT_CFG_ENUM: *(int64_t *)field = 0; break;
        case RT_CFG_BOOL: *(bool *)field = false; break;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!table[i].def)
            continue;
        char what[300];
        snprintf(what, sizeof what, "default of --%s", table[i].key);
        int rc = s_set(&table[i], opts, table[i].def, program, what);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* A flag as found in argv: the option and its value text (NULL for a bare bool). */
typedef struct {
    size_t param;
    const char *value;
} s_flag_t;

int rt_config_load(const rt_cfg_param_t *table, size_t n, void *opts, int argc, char **argv,
                   const char *program, const char *summary)
{
    int rc = 0;
    s_flag_t *flags = NULL;
    size_t nflags = 0;
    bool *given = NULL;
    s_entry_t *entries = NULL;
    size_t nentries = 0;

    if (!program)
        program = "rt";
    rc = s_defaults(table, n, opts, program);
    if (rc != 0)
        goto cleanup;

    flags = calloc(argc > 0 ? (size_t)argc : 1, sizeof *flags);
    given = calloc(n ? n : 1, sizeof *given);
    if (!flags || !given) {
        s_report(program, "out of memory");
        rc = RT_ENOMEM;
        goto cleanup;
    }

    /* First pass: find every flag and its value text, stopping at --help. */
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            s_help(table, n, program, summary);
            rc = 1;
            goto cleanup;
        }
        if (strcmp(arg, "--version") == 0) {
            printf("%s %s\n", program, rt_version_text);
            rc = 1;
            goto cleanup;
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            if (arg[0] == '-' && arg[1] != '\0' && strcmp(arg, "--") != 0)
                s_report(program, "unknown option \"%s\"", arg);
            else
                s_report(program, "unexpected argument \"%s\"", arg);
            rc = RT_EINVAL;
            goto cleanup;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
        size_t idx = s_find(table, n, name, name_len);
        if (idx == n) {
            s_report(program, "unknown option \"--%.*s\"", (int)name_len, name);
            rc = RT_EINVAL;
            goto cleanup;
        }
        const rt_cfg_param_t *p = &table[idx];
        const char *value = NULL;
        if (eq) {
            value = eq + 1;
        } else if (p->type == RT_CFG_BOOL) {
            bool ignored;
            if (a + 1 < argc && s_parse_bool(argv[a + 1], &ignored))
                value = argv[++a];
        } else if (a + 1 < argc && strncmp(argv[a + 1], "--", 2) != 0) {
            value = argv[++a];
        } else {
            s_report(program, "--%s: missing value", p->key);
            rc = RT_EINVAL;
            goto cleanup;
        }
        flags[nflags].param = idx;
        flags[nflags].value = value;
        nflags++;
    }

    /* The file, when --config was given (the last one wins). */
    const char *config_path = NULL;
    for (size_t f = 0; f < nflags; f++) {
        const rt_cfg_param_t *p = &table[flags[f].param];
        if (p->type == RT_CFG_STR && strcmp(p->key, "config") == 0)
            config_path = flags[f].value;
    }
    if (config_path) {
        rc = s_parse_file(table, n, config_path, program, &entries, &nentries, given);
        if (rc != 0)
            goto cleanup;
        s_apply_entries(table, opts, entries, nentries);
    }

    /* The flags, which win over the file. */
    for (size_t f = 0; f < nflags; f++) {
        const rt_cfg_param_t *p = &table[flags[f].param];
        char what[300];
        snprintf(what, sizeof what, "--%s", p->key);
        rc = s_set(p, opts, flags[f].value ? flags[f].value : "true", program, what);
        if (rc != 0)
            goto cleanup;
        given[flags[f].param] = true;
    }

    for (size_t i = 0; i < n; i++) {
        if (table[i].required && !given[i]) {
            s_report(program, "missing required option --%s", table[i].key);
            rc = RT_EINVAL;
            goto cleanup;
        }
    }

cleanup:
    s_entries_free(table, entries, nentries);
    free(given);
    free(flags);
    if (rc != 0)
        rt_config_free(table, n, opts);
    return rc;
}

int rt_config_load_file(const rt_cfg_param_t *table, size_t n, void *opts, const char *path)
{
    s_entry_t *entries = NULL;
    size_t count = 0;
    int rc = s_parse_file(table, n, path, NULL, &entries, &count, NULL);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < count; i++) {
        const rt_cfg_param_t *p = &table[entries[i].param];
        if (p->reloadable)
            s_store(p, opts, &entries[i].val);
        else if (!s_same(p, opts, &entries[i].val))
            rt_warn("%s: %s changed; the new value applies at the next start", path, p->key);
    }
    s_entries_free(table, entries, count);
    return 0;
}

const char *rt_config_value(const rt_cfg_param_t *p, const void *opts, char *buf, size_t size)
{
    const void *field = (const char *)opts + p->offset;
    switch (p->type) {
    case RT_CFG_STR: {
        const char *v = *(char *const *)field;
        snprintf(buf, size, "%s", v ? v : "");
        break;
    }
    case RT_CFG_INT: snprintf(buf, size, "%" PRId64, *(const int64_t *)field); break;
    case RT_CFG_ENUM: snprintf(buf, size, "%s", p->choices[*(const int64_t *)field]); break;
    case RT_CFG_BOOL: snprintf(buf, size, "%s", *(const bool *)field ? "true" : "false"); break;
    }
    return buf;
}

void rt_config_free(const rt_cfg_param_t *table, size_t n, void *opts)
{
    for (size_t i = 0; i < n; i++) {
        if (table[i].type != RT_CFG_STR)
            continue;
        char **sp = s_field(&table[i], opts);
        free(*sp);
        *sp = NULL;
    }
}
