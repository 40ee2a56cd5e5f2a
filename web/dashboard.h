/* web/dashboard.h - the dashboard page served at "/" by both daemons, self-contained. */
#ifndef RT_DASHBOARD_H
#define RT_DASHBOARD_H

#include <stddef.h>

/* The page is web/dashboard.html, built into the program: web/embed.cmake writes these
 * two definitions from it at build time (dashboard_html.c in the build directory).
 *
 * The page polls GET /api/status every second (a publisher's status as rt_status_json
 * writes it, or a subscriber's as rt_metrics_subscriber_json writes it), keeps five
 * minutes of throughput history in the browser and draws it on a canvas. It posts
 * /api/pause?name=N and /api/resume?name=N from the buttons of the subscribers table
 * (publisher only; the answer's "text" or "error" JSON field, or its plain text, is
 * shown) and /api/ping from "Test connection" (its "queued_us" JSON field is shown
 * beside the measured round trip). Serve it as "text/html; charset=utf-8". */
extern const char rt_dashboard_html[];     /* the page's bytes, then a NUL; static */
extern const size_t rt_dashboard_html_len; /* bytes in the page, without the NUL */

#endif
