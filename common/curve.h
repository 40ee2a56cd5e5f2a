/* common/curve.h - CURVE keys for every rt socket: certificate files (rtctl keygen), and
 * the publisher's side of authentication: zauth accepting only the allowed certificates,
 * the name bound to each key, and which keys may use the admin verbs. */
#ifndef RT_CURVE_H
#define RT_CURVE_H

#include <czmq.h>

#include "rt.h"

/* A CURVE public key in Z85: 40 characters and a NUL. */
#define RT_CURVE_KEY_LEN 41

/* Loads the key pair of a secret certificate file (NAME.cert_secret, as rtctl keygen
 * writes it). Returns NULL on failure, logged (missing, unreadable, no secret key).
 * The caller zcert_destroy's it. */
zcert_t *rt_curve_load_secret(const char *path);

/* Reads the public key of a certificate file (NAME.cert) into key. RT_OK, or RT_EINVAL
 * when the file is missing or holds no CURVE public key (logged). */
int rt_curve_load_public(const char *path, char key[RT_CURVE_KEY_LEN]) RT_WUR;

/* A CURVE client's keys (rt-subscriber, rt-relay): its key pair from secret_path, whose
 * certificate must be named name (the publisher binds the one to the other), and the
 * publisher's pinned public key from publisher_path. RT_OK with *cert (the caller
 * zcert_destroy's it) and key, or RT_EINVAL (logged; *cert then NULL). */
int rt_curve_load_client(const char *secret_path, const char *publisher_path, const char *name,
                         zcert_t **cert, char key[RT_CURVE_KEY_LEN]) RT_WUR;

/* Writes DIR/NAME.cert (public key, metadata name = NAME, to hand to the peer) and
 * DIR/NAME.cert_secret (both keys, mode 0600, to keep). Refuses to overwrite either.
 * RT_OK; RT_EINVAL for an unusable name or an existing file; RT_EIO when writing failed.
 * Errors are printed to stderr naming the file. */
int rt_curve_keygen(const char *dir, const char *name) RT_WUR;

typedef struct rt_auth_t rt_auth_t;

/* Starts zauth, the ZAP handler, accepting CURVE clients whose public certificate is in
 * allow_dir and no others; admin_dir (may be NULL) lists the certificates, also in
 * allow_dir, whose holders may use the admin verbs. Create it before binding any CURVE
 * server socket: a CURVE server with no ZAP handler accepts every client. Returns NULL
 * on failure, logged (a directory that is missing or holds no certificate). */
rt_auth_t *rt_auth_new(const char *allow_dir, const char *admin_dir);
void rt_auth_destroy(rt_auth_t **self_p);

/* Reads both directories again (SIGHUP): certificates added since are accepted, removed
 * ones refused at their next connection. RT_OK, or RT_EINVAL (logged; the old lists
 * stay in force). */
int rt_auth_reload(rt_auth_t *self) RT_WUR;

/* The name bound to an allowed public key (Z85): its certificate's "name" metadata.
 * NULL for a key that is not allowed or whose certificate has no usable name.
 * Borrowed: valid until the next reload. */
const char *rt_auth_name(rt_auth_t *self, const char *public_key);

/* True when public_key's certificate is in the admin directory. */
bool rt_auth_is_admin(rt_auth_t *self, const char *public_key);

/* How many certificates each list holds (for the ready line and status). */
size_t rt_auth_allowed(rt_auth_t *self);
size_t rt_auth_admins(rt_auth_t *self);

#endif
