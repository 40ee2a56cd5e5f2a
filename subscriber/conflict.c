/* subscriber/conflict.c - conflict policies: their words, parsed and named. */
#include "conflict.h"

#include <string.h>

const char *const rt_conflict_policy_words[RT_CONFLICT_NPOLICIES + 1] = {
    [RT_CONFLICT_ERROR] = "error",
    [RT_CONFLICT_APPLY_REMOTE] = "apply_remote",
    [RT_CONFLICT_NPOLICIES] = NULL,
};

int rt_conflict_policy_parse(const char *word, int *policy)
{
    for (int i = 0; i < RT_CONFLICT_NPOLICIES; i++)
        if (strcmp(word, rt_conflict_policy_words[i]) == 0) {
            *policy = i;
            return RT_OK;
        }
    return RT_EINVAL;
}

const char *rt_conflict_policy_name(int policy)
{
    if (policy < 0 || policy >= RT_CONFLICT_NPOLICIES)
        policy = RT_CONFLICT_ERROR;
    return rt_conflict_policy_words[policy];
}
