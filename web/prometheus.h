/* web/prometheus.h - Prometheus text exposition format 0.0.4: metric families and samples. */
#ifndef RT_PROMETHEUS_H
#define RT_PROMETHEUS_H

#include "buf.h"
#include "rt.h"

/* Content-Type of a /metrics response. */
#define RT_PROMETHEUS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* A label pair. Label lists are arrays ended by an entry whose name is NULL
 * ({NULL, NULL}); a NULL list means no labels. */
typedef struct {
    const char *name;  /* [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" */
    const char *value; /* any UTF-8 text; escaped on output */
} rt_prometheus_label_t;

/* Metric names must match [a-zA-Z_:][a-zA-Z0-9_:]* (checked by assert: names are the
 * program's, never input). Output errors are sticky in the buffer (rt_buf_error). */

/* Appends "# HELP name help" (help escaped: \\ and \n) and "# TYPE name type", type being
 * "counter", "gauge" or "untyped". Write it once per metric name, before its samples. */
void rt_prometheus_family(rt_buf_t *out, const char *name, const char *type, const char *help);

/* Appends one sample line: name{label="value",...} value. Label values are escaped
 * (\\, \" and \n). Integral values below 2^53 print as integers, NaN as NaN,
 * infinities as +Inf/-Inf, other values with the fewest digits that read back exactly. */
void rt_prometheus_sample(rt_buf_t *out, const char *name, const rt_prometheus_label_t *labels,
                          double value);

/* A family of one sample: rt_prometheus_family then rt_prometheus_sample. */
void rt_prometheus_counter(rt_buf_t *out, const char *name, const char *help,
                           const rt_prometheus_label_t *labels, double value);
void rt_prometheus_gauge(rt_buf_t *out, const char *name, const char *help,
                         const rt_prometheus_label_t *labels, double value);

#endif
