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
    RT_CONFLICT_NPOLICIES         /* how many policies there are */
} rt_conflict_policy_t;

/* The policies' words indexed by rt_conflict_policy_t, then NULL (the choices list of
 * an RT_CFG_ENUM option): "error", "apply_remote". */
extern const char *const rt_conflict_policy_words[RT_CONFLICT_NPOLICIES + 1];

/* Parses a policy word into *policy; RT_EINVAL when word is not one. */
int rt_conflict_policy_parse(const char *word, int *policy) RT_WUR;

/* The word of policy ("error" for a value that is not a policy). Static storage. */
const char *rt_conflict_policy_name(int policy);

#endif
