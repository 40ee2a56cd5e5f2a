/* tests/unit/unit_tmp.h - a fresh directory per test under RT_TMPDIR (default /tmp),
 * removed with everything in it afterwards. */
#ifndef RT_UNIT_TMP_H
#define RT_UNIT_TMP_H

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static int s_unit_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Creates RT_TMPDIR/<prefix>-XXXXXX into dir. 0, or -1. */
static inline int rt_unit_mkdtemp(char *dir, size_t size, const char *prefix)
{
    const char *base = getenv("RT_TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    if (mkdir(base, 0700) != 0 && errno != EEXIST)
        return -1;
    snprintf(dir, size, "%s/%s-XXXXXX", base, prefix);
    return mkdtemp(dir) ? 0 : -1;
}

/* Removes dir and everything in it. */
static inline void rt_unit_rmtree(const char *dir)
{
    nftw(dir, s_unit_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
