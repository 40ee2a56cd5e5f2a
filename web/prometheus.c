/* web/prometheus.c - Prometheus text exposition format 0.0.4: metric families and samples. */
#include "prometheus.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef NDEBUG
static bool s_name_ok(const char *name, bool colon)
{
    if (!name || !*name)
        return false;
    for (const char *p = name; *p; p++) {
        char c = *p;
        bool alpha =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
        if (!alpha && !(p > name && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}
#endif

/* Appends s with backslash and newline escaped, and the double quote too when quote. */
static void s_escaped(rt_buf_t *out, const char *s, bool quote)
{
    const char *run = s;
    for (; *s; s++) {
        const char *esc = NULL;
        if (*s == '\\')
            esc = "\\\\";
        else if (*s == '\n')
            esc = "\\n";
        else if (quote && *s == '"')
            esc = "\\\"";
        if (!esc)
            continue;
        rt_buf_append(out, run, (size_t)(s - run));
        rt_buf_puts(out, esc);
        run = s + 1;
    }
    rt_buf_append(out, run, (size_t)(s - run));
}

static void s_value(rt_buf_t *out, double v)
{
    if (isnan(v)) {
        rt_buf_puts(out, "NaN");
        return;
    }
    if (isinf(v)) {
        rt_buf_puts(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (v > -9007199254740992.0 && v < 9007199254740992.0 && v == (double)(int64_t)v) {
        rt_buf_printf(out, "%" PRId64, (int64_t)v);
        return;
    }
    char text[40];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, v);
        if (strtod(text, NULL) == v)
            break;
    }
    rt_buf_puts(out, text);
}

void rt_prometheus_family(rt_buf_t *out, const char *name, const char *type, const char *help)
{
    assert(s_name_ok(name, true));
    assert(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
           strcmp(type, "untyped") == 0);
    rt_buf_printf(out, "# HELP %s ", name);
    s_escaped(out, help ? help : "", false);
    rt_buf_printf(out, "\n# TYPE %s %s\n", name, type);
}

void rt_prometheus_sample(rt_buf_t *out, const char *name, const rt_prometheus_label_t *labels,
                          double value)
{
    assert(s_name_ok(name, true));
    rt_buf_puts(out, name);
    if (labels && labels[0].name) {
        rt_buf_putc(out, '{');
        for (const rt_prometheus_label_t *l = labels; l->name; l++) {
            assert(s_name_ok(l->name, false) && strncmp(l->name, "__", 2) != 0);
            rt_buf_printf(out, "%s%s=\"", l == labels ? "" : ",", l->name);
            s_escaped(out, l->value ? l->value : "", true);
            rt_buf_putc(out, '"');
        }
        rt_buf_putc(out, '}');
    }
    rt_buf_putc(out, ' ');
    s_value(out, value);
    rt_buf_putc(out, '\n');
}

void rt_prometheus_counter(rt_buf_t *out, const char *name, const char *help,
                           const rt_prometheus_label_t *labels, double value)
{
    rt_prometheus_family(out, name, "counter", help);
    rt_prometheus_sample(out, name, labels, value);
}

void rt_prometheus_gauge(rt_buf_t *out, const char *name, const char *help,
                         const rt_prometheus_label_t *labels, double value)
{
    rt_prometheus_family(out, name, "gauge", help);
    rt_prometheus_sample(out, name, labels, value);
}
