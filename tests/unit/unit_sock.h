/* tests/unit/unit_sock.h - a socket of common/sock bound on a free loopback port, for
 * tests that talk to it over real TCP (include after cmocka.h). */
#ifndef RT_UNIT_SOCK_H
#define RT_UNIT_SOCK_H

#include <stdio.h>

#include "sock.h"

/* Binds type on a free loopback port; the endpoint is written to ep. */
static zsock_t *s_bound(int type, char *ep, size_t size)
{
    rt_sock_opts_t o = {
        .type = type, .endpoint = "tcp://127.0.0.1:*", .bind = true, .what = "test"};
    zsock_t *s = rt_sock_new(&o);
    assert_non_null(s);
    snprintf(ep, size, "%s", zsock_endpoint(s));
    return s;
}

#endif
