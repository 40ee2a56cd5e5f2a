/* common/daemon.h - what both daemons do the same way: signals, the ready line, SIGHUP
 * reload of the config file and the exit code of a run. */
#ifndef RT_DAEMON_H
#define RT_DAEMON_H

#include <signal.h>

#include "config.h"
#include "rt.h"

/* Names of the log levels, in rt_log_level_t order, for a "log-level" RT_CFG_ENUM. */
extern const char *const rt_daemon_log_levels[];

/* Sets the log's program name and level, installs the handlers (SIGTERM and SIGINT ask
 * to stop, SIGHUP to reload; SIGPIPE is ignored), keeps czmq from installing its own
 * and sets ZeroMQ linger to 0. Call once, before creating sockets. */
void rt_daemon_init(const char *program, int64_t log_level);

/* Installs handler for SIGTERM, SIGINT and SIGHUP (restarting interrupted calls is
 * left off, so waits return EINTR) and ignores SIGPIPE. rt_daemon_init uses it; so
 * does a foreground tool that must restore the terminal on its way out. */
void rt_signals_install(void (*handler)(int sig));

/* The flag SIGTERM and SIGINT set, for loops and waits that must notice a stop. */
volatile sig_atomic_t *rt_daemon_stop_flag(void);

/* True once SIGTERM or SIGINT arrived. */
bool rt_daemon_stopping(void);

/* Logs "ready: " and the formatted text: the one line that says the daemon serves. */
void rt_daemon_ready(const char *fmt, ...) RT_PRINTF(1, 2);

/* True once for each SIGHUP that arrived since the last call. */
bool rt_daemon_sighup(void);

/* For a SIGHUP: re-reads config_path into opts with rt_config_load_file (only reloadable
 * keys change; a file with errors changes nothing), re-applies log_level_field's value
 * to the log, logs the reloadable keys' values and returns true so that the caller
 * applies the settings it uses. False when there is no file (warned) or the file has
 * errors (logged, running settings kept). log_level_field: the options' int64_t log
 * level, or NULL. */
bool rt_daemon_reload(const rt_cfg_param_t *table, size_t n, void *opts, const char *config_path,
                      const int64_t *log_level_field);

/* The process exit code for the result of a daemon's run: RT_OK -> RT_EXIT_OK,
 * RT_EINVAL -> RT_EXIT_USAGE, RT_ETRIMMED -> RT_EXIT_RESYNC, others -> RT_EXIT_FAILURE. */
int rt_daemon_exit_code(int rc);

#endif
