/*
 * sqlite-gather -- wrap a real blocking library, SQLite, with evexec.
 *
 * Each query runs as a job on the pool with a connection of its own (an
 * in-memory database, or a database file in a temporary directory): SQLite
 * connections are not shared between threads here.  The loop gathers the
 * answers and prints them in the order the queries were given.
 *
 * A last query never ends by itself.  It is given 100 ms with
 * evexec_wait_for(); the timeout cancels the job, and SQLite's progress
 * handler, which asks evexec_job_cancelled(), interrupts the statement:
 * cooperative cancellation of a library call that knows nothing of evexec.
 *
 * Build: cc sqlite-gather.c $(pkg-config --cflags --libs evexec sqlite3)
 * Exit status 0 when every answer came back as expected.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <sqlite3.h>

#include "evexec.h"

struct query {
    const char *title;
    const char *db;             /* ":memory:", or a file name in the temp dir */
    const char *setup;          /* run first (may be NULL) */
    const char *sql;            /* its first row is the answer */
    char path[512];             /* the database file, when db is a name */
};

/* SQLite calls this every 1000 virtual machine steps; non-zero stops the
 * statement with SQLITE_INTERRUPT. */
static int stop_if_cancelled(void *job)
{
    return evexec_job_cancelled(job);
}

/* The job: open, set up, ask, close.  The answer is an sqlite3_mprintf()
 * string, released by the future with sqlite3_free(). */
static int run_query(struct evexec_job *job, void *arg)
{
    struct query *q = arg;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char *answer = NULL;
    int rc = sqlite3_open_v2(q->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                             NULL);
    if (rc == SQLITE_OK) {
        sqlite3_progress_handler(db, 1000, stop_if_cancelled, job);
        if (q->setup)
            rc = sqlite3_exec(db, q->setup, NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, q->sql, -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int i = 0; i < sqlite3_column_count(st); i++) {
            char *next = sqlite3_mprintf("%s%s%s", answer ? answer : "", i ? " | " : "",
                                         (const char *)sqlite3_column_text(st, i));
            sqlite3_free(answer);
            answer = next;
        }
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    if (rc == SQLITE_INTERRUPT) {
        sqlite3_free(answer);
        return ECANCELED;
    }
    if (rc != SQLITE_OK || !answer) {
        sqlite3_free(answer);
        return EIO;
    }
    evexec_job_set_result(job, answer, sqlite3_free);
    return 0;
}

static struct query queries[] = {
    { "sum of squares",
      ":memory:", NULL,
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) "
      "SELECT sum(i * i) FROM n", "" },
    { "primes below 5000",
      ":memory:",
      "CREATE TABLE n(i INTEGER PRIMARY KEY);"
      "WITH RECURSIVE c(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM c WHERE i < 4999) "
      "INSERT INTO n SELECT i FROM c;",
      "SELECT count(*), max(i) FROM n AS a WHERE NOT EXISTS "
      "(SELECT 1 FROM n AS b WHERE b.i * b.i <= a.i AND a.i % b.i = 0)", "" },
    { "a table on disk",
      "shop.db",
      "CREATE TABLE IF NOT EXISTS sale(item TEXT, qty INTEGER, price REAL);"
      "DELETE FROM sale;"
      "INSERT INTO sale VALUES ('tea', 3, 2.5), ('cake', 2, 4.0), ('tea', 1, 2.5);",
      "SELECT item, sum(qty), printf('%.2f', sum(qty * price)) FROM sale "
      "GROUP BY item ORDER BY sum(qty * price) DESC LIMIT 1", "" },
    { "the library",
      ":memory:", NULL,
      "SELECT 'SQLite ' || sqlite_version()", "" },
};

#define NQUERIES (sizeof queries / sizeof queries[0])

static struct query runaway = {
    "a runaway query",
    ":memory:", NULL,
    "WITH RECURSIVE forever(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM forever) "
    "SELECT count(*) FROM forever", "" };

static const char *expected[NQUERIES] = {
    "333338333350000",
    "669 | 4999",
    "tea | 4 | 10.00",
    NULL,                       /* depends on the library */
};

int main(void)
{
    char dir[] = "/tmp/sqlite-gather-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("sqlite-gather: mkdtemp");
        return 1;
    }
    for (size_t i = 0; i < NQUERIES; i++) {
        struct query *q = &queries[i];
        if (strcmp(q->db, ":memory:") == 0)
            snprintf(q->path, sizeof q->path, "%s", q->db);
        else
            snprintf(q->path, sizeof q->path, "%s/%s", dir, q->db);
    }
    strcpy(runaway.path, runaway.db);

    struct event_base *base = event_base_new();
    struct evexec *ex = base ? evexec_new(base, NULL) : NULL;
    if (!ex) {
        fprintf(stderr, "sqlite-gather: %s\n", evexec_strerror(errno));
        return 1;
    }

    /* Every query at once, one job and one connection each. */
    struct evexec_future *fs[NQUERIES];
    for (size_t i = 0; i < NQUERIES; i++) {
        if (!(fs[i] = evexec_run(ex, run_query, &queries[i]))) {
            fprintf(stderr, "sqlite-gather: %s\n", evexec_strerror(errno));
            return 1;
        }
    }
    struct evexec_future *all = evexec_gather(ex, fs, NQUERIES);
    int rc = all ? evexec_run_until_complete(ex, all) : errno;
    int failed = rc != 0;
    printf("%zu queries, one job and one connection each, gathered: %s\n", NQUERIES,
           evexec_strerror(rc));
    char **answers = evexec_future_result(all);
    for (size_t i = 0; answers && i < NQUERIES; i++) {
        printf("  %-18s %s\n", queries[i].title, answers[i]);
        if (expected[i] && strcmp(answers[i], expected[i]) != 0) {
            printf("  %-18s expected %s\n", "", expected[i]);
            failed = 1;
        }
    }
    evexec_future_unref(all);
    for (size_t i = 0; i < NQUERIES; i++)
        evexec_future_unref(fs[i]);

    /* The runaway query: the timeout cancels the job, SQLite stops. */
    struct timeval limit = { 0, 100000 };
    struct evexec_future *job = evexec_run(ex, run_query, &runaway);
    struct evexec_future *bounded = job ? evexec_wait_for(ex, job, &limit) : NULL;
    rc = bounded ? evexec_run_until_complete(ex, bounded) : errno;
    int job_rc = evexec_run_until_complete(ex, job);
    printf("%s, given %ld ms: %s; the job ended: %s\n", runaway.title,
           (long)(limit.tv_usec / 1000), evexec_strerror(rc), evexec_strerror(job_rc));
    failed |= rc != ETIMEDOUT || job_rc != ECANCELED;
    evexec_future_unref(bounded);
    evexec_future_unref(job);

    evexec_free(ex);
    event_base_free(base);
    for (size_t i = 0; i < NQUERIES; i++)
        if (strcmp(queries[i].db, ":memory:") != 0)
            unlink(queries[i].path);
    rmdir(dir);
    return failed;
}
