/* common/log.h - one-line timestamped log records on stderr. */
#ifndef RT_LOG_H
#define RT_LOG_H

#include "rt.h"

typedef enum { RT_LOG_DEBUG = 0, RT_LOG_INFO, RT_LOG_WARN, RT_LOG_ERROR } rt_log_level_t;

/* Sets the program name printed on every line and the lowest level shown. */
void rt_log_init(const char *program, rt_log_level_t min_level);

/* Writes "2026-11-25T14:30:00.123Z rt-publisher LEVEL: message\n" to stderr. */
void rt_log(rt_log_level_t level, const char *fmt, ...) RT_PRINTF(2, 3);

#define rt_debug(...) rt_log(RT_LOG_DEBUG, __VA_ARGS__)
#define rt_info(...) rt_log(RT_LOG_INFO, __VA_ARGS__)
#define rt_warn(...) rt_log(RT_LOG_WARN, __VA_ARGS__)
#define rt_error(...) rt_log(RT_LOG_ERROR, __VA_ARGS__)

#endif
