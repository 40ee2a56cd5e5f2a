/* common/log.c - one-line timestamped log records on stderr. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

static const char *s_program = "rt";
static rt_log_level_t s_min_level = RT_LOG_INFO;

void rt_log_init(const char *program, rt_log_level_t min_level)
{
    s_program = program;
    s_min_level = min_level;
}

void rt_log(rt_log_level_t level, const char *fmt, ...)
{
    static const char *names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};
    if (level < s_min_level)
        return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);

    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* One fprintf per record so concurrent writers do not interleave within a line. */
    fprintf(stderr, "%s.%03dZ %s %s: %s\n", stamp, (int)(tv.tv_usec / 1000), s_program,
            names[level], line);
}
