/* test_topics.c: the error-kind table (kerr.c) and the per-topic park state (topics.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kerr.h"
#include "topics.h"

/* ---- kerr ----------------------------------------------------------------------------------- */

/* The cases, by kind: these decide between waiting, parking and dead-lettering. */
static void test_kinds_of_the_errors_that_matter(void **state) {
    (void)state;
    const struct {
        rd_kafka_resp_err_t err;
        kerr_kind_t kind;
    } want[] = {
        {RD_KAFKA_RESP_ERR_NO_ERROR, KERR_OK},
        {RD_KAFKA_RESP_ERR__TRANSPORT, KERR_RETRIABLE},
        {RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, KERR_RETRIABLE},
        {RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, KERR_RETRIABLE},
        {RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, KERR_RETRIABLE},
        {RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, KERR_RETRIABLE},
        {RD_KAFKA_RESP_ERR__PURGE_QUEUE, KERR_RETRIABLE},
        {RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, KERR_TOPIC},
        {RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, KERR_TOPIC},
        {RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, KERR_TOPIC},
        {RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED, KERR_TOPIC},
        {RD_KAFKA_RESP_ERR_INVALID_REQUIRED_ACKS, KERR_TOPIC},
        {RD_KAFKA_RESP_ERR_INVALID_RECORD, KERR_RECORD},
        {RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, KERR_RECORD},
        {RD_KAFKA_RESP_ERR_POLICY_VIOLATION, KERR_RECORD},
        {RD_KAFKA_RESP_ERR_INVALID_MSG, KERR_RECORD},
        {RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE, KERR_RECORD},
        {RD_KAFKA_RESP_ERR__FATAL, KERR_FATAL},
        {RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, KERR_FATAL},
        {RD_KAFKA_RESP_ERR_PRODUCER_FENCED, KERR_FATAL},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *reason = NULL;
        kerr_kind_t k = kerr_classify(want[i].err, &reason);
        if (k != want[i].kind)
            fail_msg("%s is %s, want %s", rd_kafka_err2name(want[i].err), kerr_kind_name(k),
                     kerr_kind_name(want[i].kind));
        assert_non_null(reason);
        assert_true(strlen(reason) > 3);
    }
}

/* An error the table does not name is kept and retried: never dead-lettered on a guess. */
static void test_unknown_errors_are_retriable(void **state) {
    (void)state;
    const char *reason = NULL;
    assert_int_equal(kerr_classify((rd_kafka_resp_err_t)12345, &reason), KERR_RETRIABLE);
    assert_non_null(reason);
    assert_int_equal(kerr_classify(RD_KAFKA_RESP_ERR_UNKNOWN, NULL), KERR_RETRIABLE);
}

/* One entry per error, every entry with a reason and a real librdkafka code. */
static void test_table_is_well_formed(void **state) {
    (void)state;
    size_t n = kerr_table_count();
    assert_true(n > 40);
    for (size_t i = 0; i < n; i++) {
        rd_kafka_resp_err_t e, f;
        kerr_kind_t k, k2;
        const char *r, *r2;
        kerr_table_entry(i, &e, &k, &r);
        assert_non_null(r);
        assert_true(*r != '\0');
        assert_true(k >= KERR_OK && k <= KERR_FATAL);
        assert_string_not_equal(kerr_kind_name(k), "unknown");
        /* librdkafka names it (an unknown code comes back as "ERR_..." with a number) */
        assert_null(strstr(rd_kafka_err2name(e), "ERR_"));
        for (size_t j = i + 1; j < n; j++) {
            kerr_table_entry(j, &f, &k2, &r2);
            if (e == f)
                fail_msg("%s is in the table twice", rd_kafka_err2name(e));
        }
    }
}

/* ---- topics --------------------------------------------------------------------------------- */

static void test_park_probe_unpark(void **state) {
    (void)state;
    topics_t *ts = topics_new();
    assert_non_null(ts);
    assert_null(topics_get(ts, "a"));
    assert_false(topics_blocked(ts, "a"));
    assert_int_equal(topics_park(ts, "a", KERR_TOPIC, RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, "r", 0,
                                 1000), 1);
    assert_int_equal(topics_parked_count(ts), 1);
    assert_true(topics_blocked(ts, "a"));
    assert_false(topics_blocked(ts, "b"));
    /* a record sent before the park coming back: nothing changes (logged once) */
    assert_int_equal(topics_park(ts, "a", KERR_TOPIC, RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, "r", 0,
                                 1001), 0);
    assert_int_equal(topics_next_due(ts), 1000 + TOPICS_REFUSED_MIN_MS);
    assert_int_equal(topics_due(ts, 1000 + TOPICS_REFUSED_MIN_MS - 1, 0), 0);
    assert_int_equal(topics_due(ts, 1000 + TOPICS_REFUSED_MIN_MS, 0), 1);
    topic_t *t = topics_get(ts, "a");
    assert_int_equal(t->state, TOPIC_PROBING);
    assert_false(topics_blocked(ts, "a")); /* the probe may go */
    t->probe_out = 1;
    assert_true(topics_blocked(ts, "a"));
    assert_int_equal(topics_next_due(ts), -1);
    /* the probe fails: parked again, backoff doubled */
    assert_int_equal(topics_park(ts, "a", KERR_TOPIC, RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, "r", 1,
                                 2000), 0);
    assert_int_equal(t->backoff_ms, 2 * TOPICS_REFUSED_MIN_MS);
    topics_due(ts, 5000, 0);
    /* the next probe fails another way: reported (2), once */
    assert_int_equal(topics_park(ts, "a", KERR_RETRIABLE, RD_KAFKA_RESP_ERR__TRANSPORT, "r", 1,
                                 5000), 2);
    t->state = TOPIC_PROBING;
    assert_int_equal(topics_park(ts, "a", KERR_RETRIABLE, RD_KAFKA_RESP_ERR__TRANSPORT, "r", 1,
                                 5001), 0);
    assert_int_equal(t->parked_since_ms, 1000); /* since it first stopped flowing */
    assert_int_equal(topics_unpark(ts, "a"), 1);
    assert_int_equal(topics_unpark(ts, "a"), 0);
    assert_int_equal(topics_parked_count(ts), 0);
    assert_false(topics_blocked(ts, "a"));
    topics_free(ts);
}

static void test_backoff_caps_by_kind(void **state) {
    (void)state;
    topics_t *ts = topics_new();
    int64_t now = 0;
    topics_park(ts, "r", KERR_RETRIABLE, RD_KAFKA_RESP_ERR__TRANSPORT, "x", 0, now);
    topics_park(ts, "t", KERR_TOPIC, RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, "x", 0, now);
    for (int i = 0; i < 20; i++) {
        now += 10000;
        topics_due(ts, now, 0);
        topics_park(ts, "r", KERR_RETRIABLE, RD_KAFKA_RESP_ERR__TRANSPORT, "x", 1, now);
        topics_park(ts, "t", KERR_TOPIC, RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, "x", 1, now);
    }
    assert_int_equal(topics_get(ts, "r")->backoff_ms, TOPICS_RETRY_MAX_MS);
    assert_int_equal(topics_get(ts, "t")->backoff_ms, TOPICS_REFUSED_MAX_MS);
    assert_true(TOPICS_RETRY_MAX_MS <= 1000); /* the all-down probe: recovery within ~1 s */
    /* a delivery elsewhere makes the retriable one due now, not the refused one */
    assert_int_equal(topics_retry_now(ts, now + 1), 1);
    assert_int_equal(topics_next_due(ts), now + 1);
    assert_int_equal(topics_due(ts, now + 1, 0), 1);
    assert_int_equal(topics_get(ts, "r")->state, TOPIC_PROBING);
    assert_int_equal(topics_get(ts, "t")->state, TOPIC_PARKED);
    topics_free(ts);
}

/* dead_letter.after_s: only topic-level refusals expire, once, after the time given. */
static void test_expiry_after(void **state) {
    (void)state;
    topics_t *ts = topics_new();
    topics_park(ts, "t", KERR_TOPIC, RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, "x", 0, 0);
    topics_park(ts, "r", KERR_RETRIABLE, RD_KAFKA_RESP_ERR__TRANSPORT, "x", 0, 0);
    topics_due(ts, 4999, 5000);
    assert_false(topics_get(ts, "t")->expired);
    topics_due(ts, 5000, 5000);
    assert_true(topics_get(ts, "t")->expired);
    assert_false(topics_get(ts, "r")->expired);
    assert_int_equal(topics_due(ts, 6000, 0), 0); /* after_ms 0: never */
    topics_unpark(ts, "t");
    assert_false(topics_get(ts, "t")->expired);
    topics_free(ts);
    topics_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kinds_of_the_errors_that_matter),
        cmocka_unit_test(test_unknown_errors_are_retriable),
        cmocka_unit_test(test_table_is_well_formed),
        cmocka_unit_test(test_park_probe_unpark),
        cmocka_unit_test(test_backoff_caps_by_kind),
        cmocka_unit_test(test_expiry_after),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
