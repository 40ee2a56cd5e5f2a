/* publisher/web.h - the publisher's HTTP side: /metrics, /api/status, pause/resume, dashboard. */
#ifndef RT_PUBLISHER_WEB_H
#define RT_PUBLISHER_WEB_H

#include "capture.h"
#include "http.h"
#include "stream.h"

/* Starts serving on "ADDR:PORT", HTTPS with tls (NULL or empty: HTTP; copied); stream
 * and capture are borrowed (capture NULL for a relay: its stream's status says what it
 * took from its publisher). NULL on failure, logged. Requests are answered on the
 * caller's thread by rt_http_serve(). */
rt_http_t *rt_publisher_web_new(const char *addr_port, const rt_http_tls_t *tls,
                                rt_stream_t *stream, rt_capture_t *capture);

#endif
