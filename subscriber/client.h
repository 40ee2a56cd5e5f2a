/* subscriber/client.h - the subscriber's side of the publisher conversation as every
 * client of a publisher speaks it (schemas/protocol.md, "Subscriber life"): rt-subscriber's
 * link, rt-relay's upstream and the simulated subscriber of the tests (rt_simsub).
 *
 * The core holds what they share: the DEALER to the publisher's ROUTER and the SUB to
 * its PUB, the publisher's run and what it announced stored, the FETCH credit, the
 * PING, silence and reconnection timers, and the count of frames dropped. Each user
 * keeps its own states (PINGING, HELLO, STREAMING, ...) and what it does with records
 * and messages, which rt_client_recv hands it through hooks. */
#ifndef RT_CLIENT_H
#define RT_CLIENT_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>
#include <zmq.h>

#include "fetch_window.h"
#include "wire.h"

/* Protocol timings (schemas/protocol.md). */
#define RT_CLIENT_SILENCE_MS 5000        /* nothing from the publisher: reconnect */
#define RT_CLIENT_ACK_MIN_MS 100         /* ACKs at most this often */
#define RT_CLIENT_ACK_MAX_MS 1000        /* and at least this often */
#define RT_CLIENT_PING_MS 1000           /* PING again while waiting for PONG */
#define RT_CLIENT_SUB_RCVHWM RT_LIVE_HWM /* messages the SUB socket queues */

typedef struct {
    /* Set by rt_client_init; borrowed: they outlive the client. */
    const char *publisher;     /* the publisher's ROUTER endpoint */
    const char *name;          /* DEALER routing id (and the HELLO name) */
    const char *pub;           /* PUB endpoint to use, or NULL: the one WELCOME names */
    zcert_t *cert;             /* CURVE key pair, or NULL for plaintext */
    const char *publisher_key; /* with cert: the publisher's public key (Z85, pinned) */

    /* The connection: from rt_client_connect to rt_client_lost. */
    zsock_t *dealer;         /* to the publisher's ROUTER */
    zsock_t *sub;            /* from its PUB */
    uint64_t run_id;         /* the publisher's run, from WELCOME (0: none yet, or a
                              * publisher without runs, which publishes stored records only) */
    uint64_t durable_head;   /* newest seq that run announced stored */
    uint64_t known_head;     /* newest seq the publisher has, as far as known */
    rt_fetch_window_t fetch; /* the FETCH credit */
    int64_t last_rx_ms;      /* last frame from the publisher */
    int64_t last_ping_ms;    /* last PING */
    int64_t last_ack_ms;     /* last ACK */
    bool ack_due;            /* what the next ACK says moved: send it soon */

    /* Reconnections. */
    int64_t reconnect_at_ms; /* when a lost connection is made again */
    int backoff_ms;          /* the delay after the next loss */

    /* Frames dropped as malformed or unexpected. */
    uint64_t bad_frames;
    uint64_t bad_logged; /* bad_frames at the last log line */
    int64_t bad_log_ms;  /* when that line was written */
} rt_client_t;

/* What a user does with what rt_client_recv takes. */
typedef struct {
    /* A REC: a live record (its LIVE header decoded in *live) from the SUB, or a single
     * REC frame (live NULL) from either socket (from_dealer: a FETCH's answer). The
     * frame may be kept (zmq_msg_copy) beyond the call. */
    void (*record)(void *ctx, zmq_msg_t *frame, bool from_dealer, const rt_msg_t *live,
                   int64_t now);
    /* A control message, decoded (the user may take its strings, leaving NULL), from the
     * DEALER, or a HUGZ from either socket. A STATUS_REPLY, which only the relay asks
     * for, comes with only its type set and its encoded form in data / datalen
     * (borrowed: the message is not to be cleared). */
    void (*message)(void *ctx, rt_msg_t *m, int64_t now);
    /* A frame dropped (why: what it was), after rt_client_bad counted it; may be NULL. */
    void (*bad)(void *ctx, const char *why);
    /* A STREAM, STREAM_ABORT or STREAM_COMMIT from the SUB, decoded (the user may take
     * its data, leaving NULL); NULL: they are dropped, not counted. */
    void (*stream)(void *ctx, rt_msg_t *m, int64_t now);
} rt_client_hooks_t;

/* Sets the options (borrowed) and clears the rest; no socket yet. */
void rt_client_init(rt_client_t *c, const char *publisher, const char *name, const char *pub,
                    zcert_t *cert, const char *publisher_key);

/* Encodes msg and sends it on the DEALER without blocking. Returns RT_OK; RT_EAGAIN
 * when it was dropped (no connection, or the socket's queue is full: the protocol
 * repeats what matters; logged at debug); RT_EPROTO when it does not encode (logged). */
int rt_client_send(rt_client_t *c, const rt_msg_t *msg);

/* Opens the DEALER to the publisher and sends PING. RT_EINVAL when the socket could
 * not be made (logged: an endpoint ZeroMQ rejects). */
int rt_client_connect(rt_client_t *c, int64_t now);

/* PING again when the last one is RT_CLIENT_PING_MS old (waiting for PONG). */
void rt_client_ping(rt_client_t *c, int64_t now);

/* Opens the SUB, subscribed to everything, unless open: to c->pub when set, else to
 * endpoint (a WELCOME's) with a wildcard host ('*', 0.0.0.0) replaced by the host of
 * the ROUTER endpoint. RT_EINVAL when the socket could not be made (logged). */
int rt_client_subscribe(rt_client_t *c, const char *endpoint);

/* WELCOME came: the publisher's run and the head it has stored; reconnections start
 * again from the shortest delay. */
void rt_client_welcome(rt_client_t *c, const rt_msg_t *welcome);

/* Notes head (a seq the publisher has) as known. */
void rt_client_note_head(rt_client_t *c, uint64_t head);

/* What a message of the publisher's run (LIVE, HUGZ, FETCHED) says: head is stored.
 * False when it comes from another run: the publisher restarted, and the records it
 * had published but not stored may come again under other seqs: the caller starts
 * over (rt_client_lost, then rt_client_restart). */
bool rt_client_note_run(rt_client_t *c, uint64_t run_id, uint64_t head);

/* A FETCHED came: rt_client_note_run with its run and head, then the FETCH it answers
 * is done (fetch_window.h). False as rt_client_note_run. */
bool rt_client_fetched(rt_client_t *c, const rt_msg_t *fetched, int64_t now);

/* A record of len bytes came in a FETCH's answer: the FETCH is being answered, and seq
 * is stored (FETCH serves stored records only) and known. */
void rt_client_fetched_record(rt_client_t *c, uint64_t seq, size_t len, int64_t now);

/* Whether a client whose next record to take is next is catching up: reading the
 * outbox (FETCHes out, or a head a FETCH's worth ahead) rather than following live
 * records (the state ACK reports). */
bool rt_client_catching_up(const rt_client_t *c, uint64_t next);

/* The state an ACK reports for a client that applies or stores what it takes without
 * errors: paused, catching up (next: its next record to take) or streaming. */
int rt_client_sub_state(const rt_client_t *c, bool paused, uint64_t next);

/* Whether the ACK is to be sent now: when due (c->ack_due) at most every
 * RT_CLIENT_ACK_MIN_MS, else every RT_CLIENT_ACK_MAX_MS. */
bool rt_client_ack_due(const rt_client_t *c, int64_t now);

/* Sends ack (an ACK) like rt_client_send; it is no longer due (set c->ack_due again
 * when what it said is already behind). */
int rt_client_ack(rt_client_t *c, const rt_msg_t *ack, int64_t now);

/* The connection is lost (why: logged at warning with the reconnection's delay): both
 * sockets are closed, the run, heads and FETCHes forgotten, and a reconnection is due
 * after the back-off (doubling from 0.5 s up to 10 s). */
void rt_client_lost(rt_client_t *c, const char *why, int64_t now);

/* After rt_client_lost for a new run: reconnect at once, from the shortest delay. */
void rt_client_restart(rt_client_t *c, int64_t now);

/* True when a lost connection is due to be made again (rt_client_connect). */
bool rt_client_reconnect_due(const rt_client_t *c, int64_t now);

/* Why an open connection is to be made again, or NULL: nothing heard for
 * RT_CLIENT_SILENCE_MS, or RT_FETCH_UNANSWERED_MAX FETCHes in a row unanswered while the
 * PUB still speaks (answers on the DEALER no longer arrive). */
const char *rt_client_silence(const rt_client_t *c, int64_t now);

/* Asks with FETCH what the credit allows for a client whose next record to take is
 * next, up to head (what it knows stored), after logging a FETCH unanswered too long
 * (asked again). with_run: the FETCHes carry the run id. Returns how many were sent. */
int rt_client_fetch(rt_client_t *c, uint64_t next, uint64_t head, bool with_run, int64_t now);

/* Counts a frame dropped as malformed or unexpected and logs it, at most every 10 s
 * (the count since the last line, and in all). */
void rt_client_bad(rt_client_t *c, const char *why, int64_t now);

/* Receives and hands to hooks one message from socket handle (c's DEALER or SUB) if
 * one waits, without blocking; what is malformed or unexpected on that socket (a
 * control message on the SUB but HUGZ, several frames that are not a live record, a
 * frame that does not decode) is counted with rt_client_bad and given to hooks->bad.
 * Returns false when nothing waited, or when handle is not an open socket of c (one
 * that a message received before closed). */
bool rt_client_recv(rt_client_t *c, void *handle, const rt_client_hooks_t *hooks, void *ctx,
                    int64_t now);

/* Fills items with c's open sockets (POLLIN); returns how many (0 to 2). */
int rt_client_poll_items(const rt_client_t *c, zmq_pollitem_t *items);

#endif
