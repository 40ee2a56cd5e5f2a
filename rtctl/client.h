/* rtctl/client.h - one request/reply exchange with a publisher's ROUTER. */
#ifndef RT_CTL_CLIENT_H
#define RT_CTL_CLIENT_H

#include <czmq.h>

#include "rt.h"
#include "wire.h"

typedef struct rt_client_t rt_client_t;

/* Connects a DEALER (routing id rtctl-<pid>) to endpoint; with cert (borrowed), over
 * CURVE to the publisher whose public key is server_key. NULL on failure, printed. */
rt_client_t *rt_client_new(const char *endpoint, zcert_t *cert, const char *server_key);
void rt_client_destroy(rt_client_t **self_p);

/* Sends msg and waits up to timeout_ms for one reply frame, returned malloc'd in
 * *reply / *len (the caller frees). RT_EAGAIN on timeout, RT_EIO on a socket error. */
int rt_client_call(rt_client_t *self, const rt_msg_t *msg, int timeout_ms, void **reply,
                   size_t *len) RT_WUR;

#endif
