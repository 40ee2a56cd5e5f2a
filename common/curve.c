/* common/curve.c - CURVE keys for every rt socket: certificate files (rtctl keygen), and
 * the publisher's side of authentication (zauth, key -> name, admin keys). */
#include "curve.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

struct rt_auth_t {
    char *allow_dir;
    char *admin_dir; /* NULL: no admin keys */
    zactor_t *zauth; /* the ZAP handler */
    zhashx_t *names; /* allowed public key -> name (char *) */
    zhashx_t *admin; /* admin public key -> name */
};

zcert_t *rt_curve_load_secret(const char *path)
{
    if (access(path, R_OK) != 0) {
        rt_error("cannot read the certificate %s: %s", path, strerror(errno));
        return NULL;
    }
    zcert_t *cert = zcert_load(path);
    static const char zero_key[] = "0000000000000000000000000000000000000000";
    if (!cert || strcmp(zcert_secret_txt(cert), zero_key) == 0) {
        rt_error("%s is not a secret certificate (rtctl keygen writes NAME.cert_secret)", path);
        zcert_destroy(&cert);
        return NULL;
    }
    return cert;
}

int rt_curve_load_public(const char *path, char key[RT_CURVE_KEY_LEN])
{
    if (access(path, R_OK) != 0) {
        rt_error("cannot read the certificate %s: %s", path, strerror(errno));
        return RT_EINVAL;
    }
    zcert_t *cert = zcert_load(path);
    if (!cert || strlen(zcert_public_txt(cert)) != RT_CURVE_KEY_LEN - 1) {
        rt_error("%s holds no CURVE public key (rtctl keygen writes NAME.cert)", path);
        zcert_destroy(&cert);
        return RT_EINVAL;
    }
    memcpy(key, zcert_public_txt(cert), RT_CURVE_KEY_LEN);
    zcert_destroy(&cert);
    return RT_OK;
}

int rt_curve_load_client(const char *secret_path, const char *publisher_path, const char *name,
                         zcert_t **cert, char key[RT_CURVE_KEY_LEN])
{
    if (!(*cert = rt_curve_load_secret(secret_path)) ||
        rt_curve_load_public(publisher_path, key) != RT_OK) {
        zcert_destroy(cert);
        return RT_EINVAL;
    }
    const char *named = zcert_meta(*cert, "name");
    if (named && strcmp(named, name) != 0) {
        rt_error("%s is the certificate of \"%s\", but this is --name \"%s\": the publisher "
                 "accepts it only with its own certificate",
                 secret_path, named, name);
        zcert_destroy(cert);
        return RT_EINVAL;
    }
    return RT_OK;
}

int rt_curve_keygen(const char *dir, const char *name)
{
    if (!rt_name_ok(name)) {
        fprintf(stderr,
                "rtctl keygen: '%s' is not a usable name (1 to 63 of A-Z a-z 0-9 _ . -, "
                "not starting with . or -)\n",
                name);
        return RT_EINVAL;
    }
    char pub[4096], sec[4200];
    snprintf(pub, sizeof pub, "%s/%s.cert", dir, name);
    snprintf(sec, sizeof sec, "%s_secret", pub);
    if (access(pub, F_OK) == 0 || access(sec, F_OK) == 0) {
        fprintf(stderr, "rtctl keygen: %s or %s exists already; not overwritten\n", pub, sec);
        return RT_EINVAL;
    }
    zcert_t *cert = zcert_new();
    if (!cert)
        return RT_EIO;
    zcert_set_meta(cert, "name", "%s", name);
    /* The secret file is created private before anything is written into it. */
    mode_t old = umask(077);
    int rc = zcert_save(cert, pub);
    umask(old);
    if (rc == 0)
        rc = chmod(pub, 0644);
    zcert_destroy(&cert);
    if (rc != 0) {
        fprintf(stderr, "rtctl keygen: cannot write %s: %s\n", pub, strerror(errno));
        return RT_EIO;
    }
    return RT_OK;
}

/* ---------------------------------------------------------------------------------
 * The publisher's lists of keys. */

/* Loads every certificate of dir into a public key -> name map. A file that is not a
 * certificate is skipped; a certificate without a usable name metadata is warned
 * about and skipped. NULL when dir cannot be read (logged). */
static zhashx_t *s_load_dir(const char *dir, const char *what)
{
    DIR *d = opendir(dir);
    if (!d) {
        rt_error("cannot read the %s directory %s: %s", what, dir, strerror(errno));
        return NULL;
    }
    zhashx_t *map = zhashx_new();
    if (!map) {
        closedir(d);
        return NULL;
    }
    zhashx_set_destructor(map, (zhashx_destructor_fn *)zstr_free);
    zhashx_set_duplicator(map, (zhashx_duplicator_fn *)strdup);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        /* Public certificates only: NAME.cert (a NAME.cert_secret beside it is skipped). */
        if (n < 6 || strcmp(e->d_name + n - 5, ".cert") != 0)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        zcert_t *cert = zcert_load(path);
        if (!cert)
            continue;
        const char *name = zcert_meta(cert, "name");
        if (!name || !rt_name_ok(name))
            rt_warn("%s: no usable \"name\" in its metadata; its key is not accepted", path);
        else
            zhashx_update(map, zcert_public_txt(cert), (void *)name);
        zcert_destroy(&cert);
    }
    closedir(d);
    return map;
}

rt_auth_t *rt_auth_new(const char *allow_dir, const char *admin_dir)
{
    rt_auth_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->allow_dir = strdup(allow_dir);
    self->admin_dir = admin_dir ? strdup(admin_dir) : NULL;
    if (!self->allow_dir || (admin_dir && !self->admin_dir) || rt_auth_reload(self) != RT_OK)
        goto fail;
    self->zauth = zactor_new(zauth, NULL);
    if (!self->zauth)
        goto fail;
    if (zstr_sendx(self->zauth, "CURVE", allow_dir, NULL) != 0 || zsock_wait(self->zauth) != 0) {
        rt_error("cannot start authentication (zauth) on %s", allow_dir);
        goto fail;
    }
    return self;
fail:
    rt_auth_destroy(&self);
    return NULL;
}

void rt_auth_destroy(rt_auth_t **self_p)
{
    rt_auth_t *self = *self_p;
    if (!self)
        return;
    zactor_destroy(&self->zauth);
    zhashx_destroy(&self->names);
    zhashx_destroy(&self->admin);
    free(self->allow_dir);
    free(self->admin_dir);
    free(self);
    *self_p = NULL;
}

int rt_auth_reload(rt_auth_t *self)
{
    zhashx_t *names = s_load_dir(self->allow_dir, "--allow");
    zhashx_t *admin = self->admin_dir ? s_load_dir(self->admin_dir, "--admin") : zhashx_new();
    if (!names || !admin) {
        zhashx_destroy(&names);
        zhashx_destroy(&admin);
        return RT_EINVAL;
    }
    for (const char *name = zhashx_first(admin); name; name = zhashx_next(admin)) {
        const char *key = zhashx_cursor(admin);
        if (!zhashx_lookup(names, key))
            rt_warn("admin certificate %s (%s) is not in the --allow directory %s: its holder "
                    "cannot connect",
                    name, key, self->allow_dir);
    }
    if (zhashx_size(names) == 0)
        rt_warn("the --allow directory %s holds no certificate: no subscriber or rtctl can "
                "connect",
                self->allow_dir);
    zhashx_destroy(&self->names);
    zhashx_destroy(&self->admin);
    self->names = names;
    self->admin = admin;
    /* zauth re-reads the directory itself on lookups; say it again so it does now. */
    if (self->zauth) {
        zstr_sendx(self->zauth, "CURVE", self->allow_dir, NULL);
        zsock_wait(self->zauth);
    }
    return RT_OK;
}

const char *rt_auth_name(rt_auth_t *self, const char *public_key)
{
    return public_key ? zhashx_lookup(self->names, public_key) : NULL;
}

bool rt_auth_is_admin(rt_auth_t *self, const char *public_key)
{
    return public_key && zhashx_lookup(self->names, public_key) &&
           zhashx_lookup(self->admin, public_key);
}

size_t rt_auth_allowed(rt_auth_t *self)
{
    return zhashx_size(self->names);
}

size_t rt_auth_admins(rt_auth_t *self)
{
    return zhashx_size(self->admin);
}
