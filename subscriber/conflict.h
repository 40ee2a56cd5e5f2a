/* subscriber/conflict.h - conflict policies: the enum and its words, defined once. */
#ifndef RT_CONFLICT_H
#define RT_CONFLICT_H

#include "rt.h"

/* What the subscriber does on a conflict (an INSERT of a key that exists, an UPDATE or
 * DELETE of a missing row). */
typedef enum {
    RT_CONFLICT_ERROR = 0,        /* stop applying (rt_apply_record returns RT_ECONFLICT) */
    RT_CONFLICT_APPLY_REMOTE = 1, /* make the replica row the source's: an existing key is
                                   * updated, a missing row of an UPDATE inserted (when the
                                   * new row is complete), a missing row of a DELETE ignored */
    RT_CONFLICT_SKIP = 2,         /* log, record and skip the conflicting change (the replica's
                                   * row stays as it is), as PostgreSQL's apply does with an
                                   * UPDATE or DELETE of a missing row */
    RT_CONFLICT_KEEP_LOCAL = 3,   /* the replica's version wins every conflict, including a
                                   * change of a row another origin wrote last */
    RT_CONFLICT_LWW = 4,          /* last_write_wins: the version with the later source commit
                                   * time wins, ties broken by node name; deletes leave
                                   * tombstones */
    RT_CONFLICT_NPOLICIES         /* how many policies there are */
} rt_conflict_policy_t;

/* The conflicts a change can meet that a policy may resolve. The *_differs and
 * *_deleted kinds are detected under keep_local and last_write_wins only (they need the
 * local row's or tombstone's version). */
typedef enum {
    RT_CONFLICT_INSERT_EXISTS = 0, /* an INSERT of a key the replica has */
    RT_CONFLICT_UPDATE_MISSING,    /* an UPDATE of a row the replica does not have */
    RT_CONFLICT_DELETE_MISSING,    /* a DELETE of a row the replica does not have */
    RT_CONFLICT_UPDATE_DIFFERS,    /* an UPDATE of a row another origin wrote last */
    RT_CONFLICT_DELETE_DIFFERS,    /* a DELETE of a row another origin wrote last */
    RT_CONFLICT_INSERT_DELETED,    /* an INSERT of a key the replica deleted (tombstone) */
    RT_CONFLICT_UPDATE_DELETED,    /* an UPDATE of a row the replica deleted (tombstone) */
    RT_CONFLICT_NKINDS
} rt_conflict_kind_t;

/* A version of a row: the commit that wrote it (or deleted it, for a tombstone). */
typedef struct {
    bool known;       /* its commit time is known (not: in progress in this transaction,
                       * or older than the commit timestamps PostgreSQL keeps) */
    int64_t ts;       /* commit time, PostgreSQL epoch microseconds */
    const char *node; /* the node whose write it is (its rt source name, or the local
                       * node's name for a write made on the replica itself) */
} rt_version_t;

/* What is done with a conflicting change. */
typedef enum {
    RT_RESOLVE_APPLY = 0, /* the remote row wins: written over or into the replica */
    RT_RESOLVE_SKIP,      /* the change is left out; the replica's row stays */
    RT_RESOLVE_STOP,      /* applying stops before the record (retried with back-off) */
} rt_resolve_t;

/* The policies' words indexed by rt_conflict_policy_t, then NULL (the choices list of
 * an RT_CFG_ENUM option): "error", "apply_remote", "skip", "keep_local",
 * "last_write_wins". */
extern const char *const rt_conflict_policy_words[RT_CONFLICT_NPOLICIES + 1];

/* Parses a policy word into *policy; RT_EINVAL when word is not one. */
int rt_conflict_policy_parse(const char *word, int *policy) RT_WUR;

/* The word of policy ("error" for a value that is not a policy). Static storage. */
const char *rt_conflict_policy_name(int policy);

/* The word of a conflict kind ("insert_exists", "update_origin_differs", ...). */
const char *rt_conflict_kind_name(rt_conflict_kind_t kind);

/* Whether the remote version wins over the local one under last_write_wins: the local
 * one is unknown, or the remote commit is later, or as late and its node name sorts
 * after the local one's (byte order), so that every node picks the same winner. */
bool rt_conflict_remote_wins(const rt_version_t *local, const rt_version_t *remote);

/* The rule of policy for a conflict of kind. local: the replica row's version (for a
 * *_deleted or *_missing kind, its tombstone's: unknown when there is none); remote: the
 * change's; remote_complete: the remote row has every column's value (no unchanged
 * TOASTed value left out), so that it can be inserted.
 *   error           every kind: STOP
 *   apply_remote    insert_exists: APPLY (the row is updated to the remote one);
 *                   update_missing: APPLY (inserted) when complete, else STOP;
 *                   delete_missing: SKIP (nothing to delete); others APPLY
 *   skip            exists, missing: SKIP; others APPLY (not a conflict to it)
 *   keep_local      every kind: SKIP
 *   last_write_wins the remote version wins (rt_conflict_remote_wins): APPLY, an
 *                   update_missing or update_deleted that cannot insert an incomplete
 *                   row STOP; the local one wins: SKIP; delete_missing: SKIP */
rt_resolve_t rt_conflict_decide(int policy, rt_conflict_kind_t kind, const rt_version_t *local,
                                const rt_version_t *remote, bool remote_complete);

#endif
