/* tests/tools/rt_outbox_digest.c - a digest of an outbox's records, to check that two
 * outboxes (a publisher's and a relay's) hold the same records under the same seqs.
 *
 * Usage: rt_outbox_digest DIR FROM TO
 * Opens the outbox read-only (safe while its daemon runs) and prints one line:
 *   records N digest HEX
 * over the seqs FROM..TO: N records, and an FNV-1a digest of each record's seq and bytes
 * in seq order. Exit status 0; 1 when a seq of the range is missing (trimmed, or not
 * stored yet) or the outbox cannot be read; 2 for bad usage. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "outbox.h"

typedef struct {
    uint64_t next, to, records, digest;
} s_digest_t;

static void s_mix(uint64_t *h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        *h ^= p[i];
        *h *= 1099511628211ull;
    }
}

static int s_one(void *arg, uint64_t seq, const void *data, size_t len)
{
    s_digest_t *d = arg;
    if (seq > d->to)
        return 1;
    if (seq != d->next)
        return 2;
    s_mix(&d->digest, &seq, sizeof seq);
    s_mix(&d->digest, data, len);
    d->records++;
    d->next++;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: rt_outbox_digest DIR FROM TO\n");
        return 2;
    }
    s_digest_t d = {.next = strtoull(argv[2], NULL, 10),
                    .to = strtoull(argv[3], NULL, 10),
                    .digest = 14695981039346656037ull};
    rt_outbox_t *ob = rt_outbox_open_readonly(argv[1]);
    if (!ob)
        return 1;
    int rc = 0;
    while (rc == 0 && d.next <= d.to) {
        uint64_t before = d.next;
        rc = rt_outbox_read(ob, d.next, 10000, 0, s_one, &d);
        if (rc == 0 && d.next == before)
            rc = 3; /* nothing more stored */
    }
    rt_outbox_destroy(&ob);
    if (d.next <= d.to) {
        fprintf(stderr, "rt_outbox_digest: %s: seq %" PRIu64 " is missing (%d)\n", argv[1], d.next,
                rc);
        return 1;
    }
    printf("records %" PRIu64 " digest %016" PRIx64 "\n", d.records, d.digest);
    return 0;
}
