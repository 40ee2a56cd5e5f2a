/* publisher/sync_schema.c - table definitions for --create-tables: pg_dump --schema-only of
 * one table, under a copy session's exported snapshot.
 *
 * pg_dump is run, not reimplemented: it knows every catalog detail of every server version
 * (identity, defaults, partitions, constraints, indexes, triggers). It gets the source's
 * connection settings as PG* environment variables (never on its command line, where other
 * users of the host could read a password) and --snapshot, so that the definitions are
 * those of the rows copied. */
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "sync_int.h"

extern char **environ;

/* Highest PostgreSQL major version looked for under /usr/lib/postgresql. */
#define S_MAX_MAJOR 40
/* Most bytes of pg_dump's messages kept for an error. */
#define S_STDERR_MAX 2000

char *rt_sync_pg_dump_program(const char *configured, int server_version)
{
    if (configured)
        return strdup(configured);
    /* Debian's layout: one bin directory per major version; pg_dump must be of the
     * server's major version or newer. */
    for (int major = server_version / 10000; major > 0 && major <= S_MAX_MAJOR; major++) {
        char path[64];
        snprintf(path, sizeof path, "/usr/lib/postgresql/%d/bin/pg_dump", major);
        if (access(path, X_OK) == 0)
            return strdup(path);
    }
    return strdup("pg_dump");
}

void rt_sync_env_free(char **env)
{
    for (size_t i = 0; env && env[i]; i++)
        free(env[i]);
    free(env);
}

/* Whether environment entry e sets variable name. */
static bool s_sets(const char *e, const char *name)
{
    size_t n = strlen(name);
    return strncmp(e, name, n) == 0 && e[n] == '=';
}

char **rt_sync_pg_dump_env(const char *dsn, char *err, size_t err_size)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn, &perr);
    if (!opts) {
        snprintf(err, err_size, "the source connection string does not parse: %s",
                 perr ? perr : "out of memory");
        PQfreemem(perr);
        return NULL;
    }
    size_t n = 0, k = 0;
    while (environ && environ[n])
        n++;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        n++;
    char **env = calloc(n + 2, sizeof *env);
    bool ok = env != NULL;
    /* The connection string's settings win over the variables this process has. */
    for (size_t i = 0; ok && environ && environ[i]; i++) {
        bool overridden = s_sets(environ[i], "PGAPPNAME");
        for (PQconninfoOption *o = opts; !overridden && o->keyword; o++)
            overridden = o->envvar && o->val && s_sets(environ[i], o->envvar);
        if (!overridden)
            ok = (env[k++] = strdup(environ[i])) != NULL;
    }
    for (PQconninfoOption *o = opts; ok && o->keyword; o++) {
        if (!o->envvar || !o->val || strcmp(o->envvar, "PGAPPNAME") == 0)
            continue;
        size_t len = strlen(o->envvar) + strlen(o->val) + 2;
        if ((ok = (env[k] = malloc(len)) != NULL))
            snprintf(env[k++], len, "%s=%s", o->envvar, o->val);
    }
    if (ok)
        ok = (env[k++] = strdup("PGAPPNAME=rt-publisher schema")) != NULL;
    PQconninfoFree(opts);
    if (!ok) {
        rt_sync_env_free(env);
        snprintf(err, err_size, "the publisher is out of memory");
        return NULL;
    }
    return env;
}

/* --table's pattern naming exactly one table: both names in double quotes (inside them
 * pg_dump takes every character literally; a quote is doubled). */
static char *s_pattern(const char *schema, const char *table)
{
    rt_buf_t b = {0};
    const char *parts[] = {schema, table};
    rt_buf_puts(&b, "--table=");
    for (int i = 0; i < 2; i++) {
        rt_buf_puts(&b, i ? ".\"" : "\"");
        for (const char *p = parts[i]; *p; p++)
            if (*p == '"')
                rt_buf_puts(&b, "\"\"");
            else
                rt_buf_putc(&b, *p);
        rt_buf_putc(&b, '"');
    }
    char *s = rt_buf_error(&b) == RT_OK ? strdup(rt_buf_str(&b)) : NULL;
    rt_buf_free(&b);
    return s;
}

/* Drops psql's \restrict and \unrestrict lines, the first and last statements of newer
 * pg_dumps' output: the script is run by libpq, not psql. */
static void s_strip_meta(rt_buf_t *out)
{
    if (!out->data)
        return;
    /* The first line that is neither blank nor a comment. */
    char *line = out->data;
    while (*line == '\n' || strncmp(line, "--", 2) == 0) {
        char *nl = strchr(line, '\n');
        if (!nl)
            break;
        line = nl + 1;
    }
    if (strncmp(line, "\\restrict ", 10) == 0) {
        char *nl = strchr(line, '\n');
        size_t cut = nl ? (size_t)(nl - line) + 1 : strlen(line);
        memmove(line, line + cut, strlen(line + cut) + 1);
        out->len -= cut;
    }
    size_t end = out->len;
    while (end > 0 && out->data[end - 1] == '\n')
        end--;
    size_t start = end;
    while (start > 0 && out->data[start - 1] != '\n')
        start--;
    if (strncmp(out->data + start, "\\unrestrict ", 12) == 0) {
        out->len = start;
        out->data[start] = '\0';
    }
}

int rt_sync_pg_dump(const rt_sync_dump_t *d, const char *schema, const char *table,
                    const char *section, rt_buf_t *out, char *err, size_t err_size)
{
    char *pattern = s_pattern(schema, table);
    char snapshot[128], sect[64];
    snprintf(snapshot, sizeof snapshot, "--snapshot=%s", d->snapshot);
    snprintf(sect, sizeof sect, "--section=%s", section);
    char *const argv[] = {(char *)d->program,
                          "--schema-only",
                          sect,
                          snapshot,
                          "--no-owner",
                          "--no-privileges",
                          "--no-publications",
                          "--no-subscriptions",
                          "--no-security-labels",
                          "--no-tablespaces",
                          "--strict-names",
                          "--lock-wait-timeout=300s",
                          pattern,
                          NULL};
    int rc = RT_EDB, outp[2] = {-1, -1};
    pid_t pid = -1;
    FILE *errf = tmpfile();
    posix_spawn_file_actions_t fa;
    bool fa_ok = false;
    if (!pattern || !errf || pipe2(outp, O_CLOEXEC) != 0) {
        snprintf(err, err_size, "cannot run %s: %s", d->program,
                 !pattern ? "out of memory" : strerror(errno));
        goto cleanup;
    }
    fa_ok = posix_spawn_file_actions_init(&fa) == 0;
    if (!fa_ok || posix_spawn_file_actions_adddup2(&fa, outp[1], STDOUT_FILENO) != 0 ||
        posix_spawn_file_actions_adddup2(&fa, fileno(errf), STDERR_FILENO) != 0 ||
        posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0) != 0) {
        snprintf(err, err_size, "cannot run %s: out of memory", d->program);
        goto cleanup;
    }
    int e = strchr(d->program, '/') ? posix_spawn(&pid, d->program, &fa, NULL, argv, d->env)
                                    : posix_spawnp(&pid, d->program, &fa, NULL, argv, d->env);
    close(outp[1]);
    outp[1] = -1;
    if (e != 0) {
        pid = -1;
        snprintf(err, err_size,
                 "cannot run %s (%s): --create-tables needs pg_dump on the publisher's host, "
                 "of the source's major version or newer (setting pg-dump)",
                 d->program, strerror(e));
        rc = RT_EINVAL;
        goto cleanup;
    }
    for (;;) {
        int w = d->wait->fn(d->wait->arg, outp[0]);
        if (w != 0) {
            rc = w; /* asked to stop */
            goto cleanup;
        }
        char buf[65536];
        ssize_t n = read(outp[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        rt_buf_append(out, buf, (size_t)n);
        if (out->len > RT_WIRE_MAX_FRAME) {
            snprintf(err, err_size, "the definition of %s.%s is over %u MiB", schema, table,
                     RT_WIRE_MAX_FRAME >> 20);
            rc = RT_EINVAL;
            goto cleanup;
        }
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    pid = -1;
    if (rt_buf_error(out) != RT_OK) {
        snprintf(err, err_size, "the publisher is out of memory");
        rc = RT_ENOMEM;
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        s_strip_meta(out);
        rc = RT_OK;
    } else {
        char msg[S_STDERR_MAX + 1] = "";
        rewind(errf);
        size_t n = fread(msg, 1, S_STDERR_MAX, errf);
        msg[n] = '\0';
        for (char *p = msg; *p; p++)
            if (*p == '\n')
                *p = ' ';
        rc = RT_EINVAL;
        snprintf(err, err_size, "pg_dump of %s.%s failed (%s %d): %s", schema, table,
                 WIFEXITED(status) ? "exit" : "signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), msg);
    }
cleanup:
    if (pid > 0) {
        kill(pid, SIGTERM);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    if (fa_ok)
        posix_spawn_file_actions_destroy(&fa);
    if (outp[0] >= 0)
        close(outp[0]);
    if (outp[1] >= 0)
        close(outp[1]);
    if (errf)
        fclose(errf);
    free(pattern);
    return rc;
}
