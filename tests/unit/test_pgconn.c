/* tests/unit/test_pgconn.c - common/pgconn: connection strings printed without their
 * password, one-line errors, a failed connect that names the server and no secret. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pgconn.h"

static void s_expect_safe(const char *dsn, const char *want)
{
    char *safe = rt_pg_dsn_safe(dsn);
    assert_non_null(safe);
    assert_string_equal(safe, want);
    free(safe);
}

static void test_dsn_safe(void **state)
{
    (void)state;
    s_expect_safe("host=db1 port=5433 dbname=app user=rt password=s3cret",
                  "user=rt dbname=app host=db1 port=5433");
    s_expect_safe("postgresql://rt:s3cret@db1:5433/app?sslmode=verify-full",
                  "user=rt dbname=app host=db1 port=5433 sslmode=verify-full");
    s_expect_safe("host=db1 application_name='my app' password='a b'",
                  "host=db1 application_name='my app'");
    s_expect_safe("dbname='it\\'s'", "dbname='it\\'s'");
    /* Unparsable: never echoed back, since it may hold the password. */
    s_expect_safe("host=db1 password='s3cret", "(unparsable connection string)");
    s_expect_safe("", "");
}

static void test_error_line(void **state)
{
    (void)state;
    char buf[64];
    assert_string_equal(rt_pg_error_line("ERROR:  x\n\tDETAIL:  y  \n", buf, sizeof buf),
                        "ERROR: x DETAIL: y");
    assert_string_equal(rt_pg_error_line(NULL, buf, sizeof buf), "");
    char small[6];
    assert_string_equal(rt_pg_error_line("abcdefgh", small, sizeof small), "abcde");
}

/* A connect to a port where nothing listens fails at once, naming the server and
 * printing the connection string without its password. */
static void test_connect_refused(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd); /* the port is now closed: connections are refused */

    char dsn[256];
    snprintf(dsn, sizeof dsn, "host=127.0.0.1 port=%d dbname=x user=u password=TopSecret42",
             ntohs(a.sin_port));
    rt_pg_opts_t o = {.dsn = dsn, .what = "the source", .timeout_ms = 5000};
    PGconn *conn = (PGconn *)1;
    char err[RT_PG_ERR_MAX + 256];
    assert_int_equal(rt_pg_connect(&o, &conn, err, sizeof err), RT_EDB);
    assert_null(conn);
    assert_non_null(
        strstr(err, "cannot connect to the source (user=u dbname=x host=127.0.0.1 port="));
    assert_null(strstr(err, "TopSecret42"));

    /* A stop request ends the wait without an error. */
    volatile sig_atomic_t stop = 1;
    o.stop = &stop;
    o.dsn = "host=192.0.2.1 connect_timeout=30 dbname=x";
    assert_int_equal(rt_pg_connect(&o, &conn, err, sizeof err), RT_EAGAIN);
    assert_null(conn);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dsn_safe),
        cmocka_unit_test(test_error_line),
        cmocka_unit_test(test_connect_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
