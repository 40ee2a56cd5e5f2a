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

#endif
