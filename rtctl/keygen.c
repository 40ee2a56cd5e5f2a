/* rtctl/keygen.c - rtctl keygen: a CURVE key pair as two certificate files. */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "curve.h"

int rt_ctl_cmd_keygen(const rt_ctl_t *g, int argc, char **argv)
{
    (void)g;
    const char *name = NULL, *dir = ".";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (argv[i][0] != '-' && !name) {
            name = argv[i];
        } else {
            fprintf(stderr, "rtctl keygen: unexpected argument \"%s\"\n", argv[i]);
            rt_ctl_command_usage(stderr, "keygen");
            return RT_EXIT_USAGE;
        }
    }
    if (!name) {
        fprintf(stderr, "rtctl keygen: NAME is missing\n");
        rt_ctl_command_usage(stderr, "keygen");
        return RT_EXIT_USAGE;
    }
    int rc = rt_curve_keygen(dir, name);
    if (rc == RT_EINVAL)
        return RT_EXIT_USAGE;
    if (rc != RT_OK)
        return RT_EXIT_FAILURE;
    printf("wrote %s/%s.cert (public: copy it to the peers) and %s/%s.cert_secret (secret: "
           "keep it where %s runs)\n",
           dir, name, dir, name, name);
    return RT_EXIT_OK;
}
