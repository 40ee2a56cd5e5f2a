/* common/daemon.c - what both daemons do the same way: signals, the ready line, SIGHUP
 * reload of the config file and the exit code of a run. */
#include "daemon.h"

#include <czmq.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

const char *const rt_daemon_log_levels[] = {"debug", "info", "warning", "error", NULL};

static const char *s_program = "rt";
static volatile sig_atomic_t s_stop = 0;
static volatile sig_atomic_t s_reload = 0;

static void s_on_signal(int sig)
{
    if (sig == SIGHUP)
        s_reload = 1;
    else
        s_stop = 1;
}

void rt_daemon_init(const char *program, int64_t log_level)
{
    s_program = program;
    rt_log_init(program, (rt_log_level_t)log_level);
    /* czmq's own handlers would make zsys_interrupted sticky; keep ours. */
    zsys_handler_set(NULL);
    zsys_set_linger(0);
    rt_signals_install(s_on_signal);
}

void rt_signals_install(void (*handler)(int sig))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

volatile sig_atomic_t *rt_daemon_stop_flag(void)
{
    return &s_stop;
}

bool rt_daemon_stopping(void)
{
    return s_stop != 0;
}

void rt_daemon_ready(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    rt_info("ready: %s", line);
}

bool rt_daemon_sighup(void)
{
    if (!s_reload)
        return false;
    s_reload = 0;
    return true;
}

bool rt_daemon_reload(const rt_cfg_param_t *table, size_t n, void *opts, const char *config_path,
                      const int64_t *log_level_field)
{
    if (!config_path) {
        rt_warn("SIGHUP: no --config file to reload");
        return false;
    }
    if (rt_config_load_file(table, n, opts, config_path) < 0) {
        rt_warn("SIGHUP: %s not reloaded (errors above); running settings kept", config_path);
        return false;
    }
    if (log_level_field)
        rt_log_init(s_program, (rt_log_level_t)*log_level_field);
    char line[1024] = "";
    size_t len = 0;
    for (size_t i = 0; i < n && len < sizeof line; i++) {
        if (!table[i].reloadable)
            continue;
        char value[256];
        len +=
            (size_t)snprintf(line + len, sizeof line - len, "%s%s %s", len ? ", " : "",
                             table[i].key, rt_config_value(&table[i], opts, value, sizeof value));
    }
    rt_info("reloaded %s: %s (other keys apply at the next start)", config_path, line);
    return true;
}

int rt_daemon_exit_code(int rc)
{
    switch (rc) {
    case RT_OK: return RT_EXIT_OK;
    case RT_EINVAL: return RT_EXIT_USAGE;
    case RT_ETRIMMED: return RT_EXIT_RESYNC;
    default: return RT_EXIT_FAILURE;
    }
}
