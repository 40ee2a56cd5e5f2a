/* subscriber/web.h - the subscriber's HTTP side: /metrics, /api/status and the dashboard. */
#ifndef RT_SUBSCRIBER_WEB_H
#define RT_SUBSCRIBER_WEB_H

#include "apply.h"
#include "http.h"
#include "initcopy.h"
#include "link.h"

/* Starts serving on "ADDR:PORT", HTTPS with tls (NULL or empty: HTTP; copied); link,
 * apply and copy (the initial copy's state, rt_initcopy_opts_t.state: while copy->copying
 * the subscriber shows as copying, with its progress) are borrowed. The caller's event
 * loop, and the initial copy's waits, poll rt_http_fd and call rt_http_serve. NULL on
 * failure, logged. */
rt_http_t *rt_subscriber_web_new(const char *addr_port, const rt_http_tls_t *tls, rt_link_t *link,
                                 rt_apply_t *apply, const rt_initcopy_state_t *copy);

#endif
