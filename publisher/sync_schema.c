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
char *rt_sync_table_pattern(const char *schema, const char *table)
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

void rt_sync_patterns_free(char **patterns)
{
    for (size_t i = 0; patterns && patterns[i]; i++)
        free(patterns[i]);
    free(patterns);
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

/* A pg_dump running for one job. */
typedef struct {
    pid_t pid; /* -1: none */
    int fd;    /* its stdout */
    FILE *errf;
    char *pattern;
} s_child_t;

/* Stops (when still running) and forgets a child. */
static void s_child_end(s_child_t *ch)
{
    if (ch->pid > 0) {
        kill(ch->pid, SIGTERM);
        while (waitpid(ch->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    if (ch->fd >= 0)
        close(ch->fd);
    if (ch->errf)
        fclose(ch->errf);
    free(ch->pattern);
    *ch = (s_child_t){.pid = -1, .fd = -1};
}

/* What a job dumps, for messages: "schema.table" or the objects. */
static void s_job_name(const rt_sync_dump_job_t *job, char *out, size_t size)
{
    if (job->objects)
        snprintf(out, size, "the types, functions and other objects the tables may use");
    else if (job->patterns)
        snprintf(out, size, "the sequences no table owns and the views");
    else
        snprintf(out, size, "%s.%s", job->schema, job->table);
}

/* The arguments of one pg_dump besides the patterns of a patterns job. */
#define S_FIXED_ARGS 16

/* Starts pg_dump for job. RT_OK; RT_EDB or RT_EINVAL with err set. */
static int s_spawn(const rt_sync_dump_t *d, const rt_sync_dump_job_t *job, s_child_t *ch, char *err,
                   size_t err_size)
{
    *ch = (s_child_t){.pid = -1, .fd = -1};
    if (!job->objects && !job->patterns)
        ch->pattern = rt_sync_table_pattern(job->schema, job->table);
    char snapshot[128], sect[64];
    snprintf(snapshot, sizeof snapshot, "--snapshot=%s", d->snapshot);
    snprintf(sect, sizeof sect, "--section=%s", job->section);
    size_t npatterns = 0;
    while (job->patterns && job->patterns[npatterns])
        npatterns++;
    char **argv = calloc(S_FIXED_ARGS + npatterns + 1, sizeof *argv);
    size_t argc = 0;
    const char *const fixed[] = {d->program,
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
                                 "--lock-wait-timeout=300s"};
    for (size_t i = 0; argv && i < sizeof fixed / sizeof fixed[0]; i++)
        argv[argc++] = (char *)fixed[i];
    if (argv && job->objects) {
        /* Every relation left out (the tables' own dumps have theirs), and rt's schema. */
        argv[argc++] = "--exclude-table=*.*";
        argv[argc++] = "--exclude-schema=rt";
    } else if (argv && job->patterns) {
        for (size_t i = 0; i < npatterns; i++)
            argv[argc++] = job->patterns[i];
    } else if (argv) {
        argv[argc++] = ch->pattern;
    }
    int rc = RT_EDB, outp[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    bool fa_ok = false;
    ch->errf = tmpfile();
    bool nomem = !argv || (!job->objects && !job->patterns && !ch->pattern);
    if (nomem || !ch->errf || pipe2(outp, O_CLOEXEC) != 0) {
        snprintf(err, err_size, "cannot run %s: %s", d->program,
                 nomem ? "out of memory" : strerror(errno));
        goto cleanup;
    }
    ch->fd = outp[0];
    fa_ok = posix_spawn_file_actions_init(&fa) == 0;
    if (!fa_ok || posix_spawn_file_actions_adddup2(&fa, outp[1], STDOUT_FILENO) != 0 ||
        posix_spawn_file_actions_adddup2(&fa, fileno(ch->errf), STDERR_FILENO) != 0 ||
        posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0) != 0) {
        snprintf(err, err_size, "cannot run %s: out of memory", d->program);
        goto cleanup;
    }
    int e = strchr(d->program, '/') ? posix_spawn(&ch->pid, d->program, &fa, NULL, argv, d->env)
                                    : posix_spawnp(&ch->pid, d->program, &fa, NULL, argv, d->env);
    if (e != 0) {
        ch->pid = -1;
        snprintf(err, err_size,
                 "cannot run %s (%s): --create-tables needs pg_dump on the publisher's host, "
                 "of the source's major version or newer (setting pg-dump)",
                 d->program, strerror(e));
        rc = RT_EINVAL;
        goto cleanup;
    }
    rc = RT_OK;
cleanup:
    if (fa_ok)
        posix_spawn_file_actions_destroy(&fa);
    if (outp[1] >= 0)
        close(outp[1]);
    free(argv);
    return rc;
}

/* Reads a started pg_dump's output to its end into job->out and waits for it. RT_OK;
 * RT_EDB, RT_EINVAL or RT_ENOMEM with err set; the waiter's code when it gave up. The
 * child is ended either way. */
static int s_collect(const rt_sync_dump_t *d, rt_sync_dump_job_t *job, s_child_t *ch, char *err,
                     size_t err_size)
{
    int rc = RT_EDB;
    for (;;) {
        int w = d->wait->fn(d->wait->arg, ch->fd);
        if (w != 0) {
            rc = w; /* asked to stop */
            goto cleanup;
        }
        char buf[65536];
        ssize_t n = read(ch->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        rt_buf_append(&job->out, buf, (size_t)n);
        if (job->out.len > RT_WIRE_MAX_FRAME) {
            char name[128];
            s_job_name(job, name, sizeof name);
            snprintf(err, err_size, "the definition of %s is over %u MiB", name,
                     RT_WIRE_MAX_FRAME >> 20);
            rc = RT_EINVAL;
            goto cleanup;
        }
    }
    int status = 0;
    while (waitpid(ch->pid, &status, 0) < 0 && errno == EINTR)
        ;
    ch->pid = -1;
    if (rt_buf_error(&job->out) != RT_OK) {
        snprintf(err, err_size, "the publisher is out of memory");
        rc = RT_ENOMEM;
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        s_strip_meta(&job->out);
        rc = RT_OK;
    } else {
        char msg[S_STDERR_MAX + 1] = "";
        rewind(ch->errf);
        size_t n = fread(msg, 1, S_STDERR_MAX, ch->errf);
        msg[n] = '\0';
        for (char *p = msg; *p; p++)
            if (*p == '\n')
                *p = ' ';
        rc = RT_EINVAL;
        char name[128];
        s_job_name(job, name, sizeof name);
        snprintf(err, err_size, "pg_dump of %s failed (%s %d): %s", name,
                 WIFEXITED(status) ? "exit" : "signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), msg);
    }
cleanup:
    s_child_end(ch);
    return rc;
}

int rt_sync_pg_dumps(const rt_sync_dump_t *d, rt_sync_dump_job_t *jobs, size_t n, char *err,
                     size_t err_size)
{
    s_child_t run[RT_SYNC_DUMPS_PARALLEL];
    for (int k = 0; k < RT_SYNC_DUMPS_PARALLEL; k++)
        run[k] = (s_child_t){.pid = -1, .fd = -1};
    int rc = RT_OK;
    size_t started = 0;
    for (size_t i = 0; i < n && rc == RT_OK; i++) {
        /* Keep the window full: job i's child is run[i % RT_SYNC_DUMPS_PARALLEL]. */
        while (rc == RT_OK && started < n && started < i + RT_SYNC_DUMPS_PARALLEL) {
            rc = s_spawn(d, &jobs[started], &run[started % RT_SYNC_DUMPS_PARALLEL], err, err_size);
            started++;
        }
        if (rc == RT_OK)
            rc = s_collect(d, &jobs[i], &run[i % RT_SYNC_DUMPS_PARALLEL], err, err_size);
    }
    for (int k = 0; k < RT_SYNC_DUMPS_PARALLEL; k++)
        s_child_end(&run[k]);
    return rc;
}
