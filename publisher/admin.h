/* publisher/admin.h - the publisher's admin verbs, for rtctl (over the ROUTER) and HTTP. */
#ifndef RT_ADMIN_H
#define RT_ADMIN_H

#include "rt.h"
#include "stream.h"
#include "wire.h"

/* Answers an admin request (PING, STATUS, PAUSE, RESUME, FORGET, REPLAY): the ROUTER
 * dispatch of stream.c sends the reply to rtctl, the HTTP side calls it in-process.
 * The reply frame (PONG, STATUS_REPLY, OK or ERROR) is malloc'd in *reply, *len bytes
 * (the caller frees it); notices to a subscriber are sent through the stream. req is
 * borrowed; PAUSE, RESUME, FORGET and REPLAY need req->name. Returns 0, RT_EINVAL when
 * req is not an admin verb, RT_ENOMEM when no reply could be built. */
int rt_admin_call(rt_stream_t *self, const rt_msg_t *req, void **reply, size_t *len) RT_WUR;

/* Who asks, as the ROUTER authenticated it. */
typedef struct {
    const char *name; /* its certificate's name, or its routing id without CURVE */
    bool admin;       /* may use the verbs that change state (PAUSE, RESUME, FORGET, REPLAY) */
} rt_admin_caller_t;

/* rt_admin_call for a caller: a verb that changes state from a caller that is not
 * admin is answered with ERROR (RT_EINVAL) and logged; every such verb that is carried
 * out is logged with the caller's name. rt_admin_call is this with a trusted caller. */
int rt_admin_call_as(rt_stream_t *self, const rt_msg_t *req, const rt_admin_caller_t *who,
                     void **reply, size_t *len) RT_WUR;

#endif
