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
    RT_CONFLICT_NPOLICIES         /* how many policies there are */
} rt_conflict_policy_t;

/* The conflicts a change can meet that a policy may resolve. */
typedef enum {
    RT_CONFLICT_INSERT_EXISTS = 0, /* an INSERT of a key the replica has */
    RT_CONFLICT_UPDATE_MISSING,    /* an UPDATE of a row the replica does not have */
    RT_CONFLICT_DELETE_MISSING,    /* a DELETE of a row the replica does not have */
} rt_conflict_kind_t;

/* What is done with a conflicting change. */
typedef enum {
    RT_RESOLVE_APPLY = 0, /* the remote row wins: written over or into the replica */
    RT_RESOLVE_SKIP,      /* the change is left out; the replica's row stays */
    RT_RESOLVE_STOP,      /* applying stops before the record (retried with back-off) */
} rt_resolve_t;

/* The policies' words indexed by rt_conflict_policy_t, then NULL (the choices list of
 * an RT_CFG_ENUM option): "error", "apply_remote", "skip". */
extern const char *const rt_conflict_policy_words[RT_CONFLICT_NPOLICIES + 1];

/* Parses a policy word into *policy; RT_EINVAL when word is not one. */
int rt_conflict_policy_parse(const char *word, int *policy) RT_WUR;

/* The word of policy ("error" for a value that is not a policy). Static storage. */
const char *rt_conflict_policy_name(int policy);

/* The rule of policy for a conflict of kind. remote_complete: the remote row has every
 * column's value (no unchanged TOASTed value left out), so that it can be inserted.
 *   error         every kind: STOP
 *   apply_remote  insert_exists: APPLY (the row is updated to the remote one);
 *                 update_missing: APPLY (inserted) when complete, else STOP;
 *                 delete_missing: SKIP (nothing to delete)
 *   skip          every kind: SKIP */
rt_resolve_t rt_conflict_decide(int policy, rt_conflict_kind_t kind, bool remote_complete);

#endif
