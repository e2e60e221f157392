/* route.c: maps a Cloud 66 event type to a family, and a family to a Kafka topic. */
#include "route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Kafka refuses topic names longer than 249 bytes; ROUTE_NAME_MAX counts the NUL as well, so
 * every name this module accepts or produces fits a char[ROUTE_NAME_MAX]. */
#define NAME_LEN_MAX (ROUTE_NAME_MAX - 1)

typedef struct route_rule {
    char *pattern; /* "exact.type", "prefix.*" or "*" */
    char *family;
} route_rule_t;

typedef struct route_topic {
    char *family;
    char *topic;
} route_topic_t;

struct route {
    char *prefix;
    route_rule_t *rules; /* added rules, tried in order before the defaults */
    size_t rule_cnt;
    route_topic_t *topics;
    size_t topic_cnt;
};

/* Tried after the configured rules. Both backup spellings go to one family because consumers
 * care about "a backup went wrong", not which Cloud 66 product ran it. */
static const route_rule_t route_defaults[] = {
    {"application.*", "application"},
    {"stack.*", "stack"},
    {"backup.*", "backup"},
    {"managed_backup.*", "backup"},
};

static int name_char_ok(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

/* Family and topic names share Kafka's topic alphabet, so a family can always be a topic. */
static int name_ok(const char *s, size_t n) {
    if (n == 0 || n > NAME_LEN_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!name_char_ok((unsigned char)s[i]))
            return 0;
    return 1;
}

/* Kafka also rejects "." and ".." (they would be directory names on the broker). */
static int topic_ok(const char *s, size_t n) {
    if (!name_ok(s, n))
        return 0;
    return strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static int pattern_ok(const char *p) {
    size_t n = strlen(p);
    if (n == 1 && p[0] == '*')
        return 1;
    if (n >= 3 && p[n - 2] == '.' && p[n - 1] == '*')
        return name_ok(p, n - 2);
    return name_ok(p, n);
}

static int pattern_match(const char *pattern, const char *event_type) {
    size_t pn = strlen(pattern);
    if (pn == 1 && pattern[0] == '*')
        return 1;
    if (pn >= 2 && pattern[pn - 2] == '.' && pattern[pn - 1] == '*') {
        /* "stack.*" keeps the dot in the comparison, so it cannot match "stacks.x", and needs
         * at least one character after it, so "stack." (an empty segment) does not match. */
        return strncmp(pattern, event_type, pn - 1) == 0 && event_type[pn - 1] != '\0';
    }
    return strcmp(pattern, event_type) == 0;
}

/* Copies s[0..n) into out when it fits; returns n, or 0 when it does not. */
static size_t copy_out(const char *s, size_t n, char *out, size_t outlen) {
    if (!out || n + 1 > outlen)
        return 0;
    memcpy(out, s, n);
    out[n] = '\0';
    return n;
}

route_t *route_new(const char *topic_prefix) {
    route_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->prefix = strdup(topic_prefix ? topic_prefix : "cloud66.");
    if (!r->prefix) {
        free(r);
        return NULL;
    }
    return r;
}

hb_status_t route_add_rule(route_t *r, const char *pattern, const char *family, char *errstr,
                           size_t errlen) {
    if (!pattern || !pattern_ok(pattern)) {
        snprintf(errstr, errlen,
                 "invalid route pattern \"%.64s\": use an event type, \"prefix.*\" or \"*\" "
                 "(characters A-Z a-z 0-9 . _ -)",
                 pattern ? pattern : "");
        return HB_ERR_INVALID;
    }
    if (!family || !name_ok(family, strlen(family))) {
        snprintf(errstr, errlen,
                 "invalid family name \"%.64s\": 1 to %d characters of A-Z a-z 0-9 . _ -",
                 family ? family : "", NAME_LEN_MAX);
        return HB_ERR_INVALID;
    }
    route_rule_t *rules = realloc(r->rules, (r->rule_cnt + 1) * sizeof *rules);
    if (!rules)
        goto nomem;
    r->rules = rules;
    route_rule_t *rule = &r->rules[r->rule_cnt];
    rule->pattern = strdup(pattern);
    rule->family = strdup(family);
    if (!rule->pattern || !rule->family) {
        free(rule->pattern);
        free(rule->family);
        goto nomem;
    }
    r->rule_cnt++;
    return HB_OK;
nomem:
    snprintf(errstr, errlen, "out of memory adding route rule");
    return HB_ERR_NOMEM;
}

hb_status_t route_set_topic(route_t *r, const char *family, const char *topic, char *errstr,
                            size_t errlen) {
    if (!family || !name_ok(family, strlen(family))) {
        snprintf(errstr, errlen,
                 "invalid family name \"%.64s\": 1 to %d characters of A-Z a-z 0-9 . _ -",
                 family ? family : "", NAME_LEN_MAX);
        return HB_ERR_INVALID;
    }
    if (!topic || !topic_ok(topic, strlen(topic))) {
        snprintf(errstr, errlen,
                 "invalid Kafka topic name \"%.64s\" for family \"%s\": 1 to %d characters of "
                 "A-Z a-z 0-9 . _ -, not \".\" or \"..\"",
                 topic ? topic : "", family, NAME_LEN_MAX);
        return HB_ERR_INVALID;
    }
    char *copy = strdup(topic);
    if (!copy)
        goto nomem;
    /* Setting a family's topic again replaces it: the last configuration line wins. */
    for (size_t i = 0; i < r->topic_cnt; i++) {
        if (strcmp(r->topics[i].family, family) == 0) {
            free(r->topics[i].topic);
            r->topics[i].topic = copy;
            return HB_OK;
        }
    }
    route_topic_t *topics = realloc(r->topics, (r->topic_cnt + 1) * sizeof *topics);
    if (!topics) {
        free(copy);
        goto nomem;
    }
    r->topics = topics;
    topics[r->topic_cnt].family = strdup(family);
    if (!topics[r->topic_cnt].family) {
        free(copy);
        goto nomem;
    }
    topics[r->topic_cnt].topic = copy;
    r->topic_cnt++;
    return HB_OK;
nomem:
    snprintf(errstr, errlen, "out of memory setting topic of family \"%s\"", family);
    return HB_ERR_NOMEM;
}

size_t route_family(const route_t *r, const char *event_type, char *out, size_t outlen) {
    if (!event_type || !event_type[0])
        return 0;
    for (size_t i = 0; i < r->rule_cnt; i++)
        if (pattern_match(r->rules[i].pattern, event_type))
            return copy_out(r->rules[i].family, strlen(r->rules[i].family), out, outlen);
    for (size_t i = 0; i < sizeof route_defaults / sizeof *route_defaults; i++)
        if (pattern_match(route_defaults[i].pattern, event_type))
            return copy_out(route_defaults[i].family, strlen(route_defaults[i].family), out,
                            outlen);
    /* Fallback: the first segment. It comes straight from the client, so it is checked here;
     * families from rules were checked when the rule was added. */
    const char *dot = strchr(event_type, '.');
    size_t n = dot ? (size_t)(dot - event_type) : strlen(event_type);
    if (!name_ok(event_type, n))
        return 0;
    return copy_out(event_type, n, out, outlen);
}

size_t route_topic(const route_t *r, const char *family, char *out, size_t outlen) {
    for (size_t i = 0; i < r->topic_cnt; i++)
        if (strcmp(r->topics[i].family, family) == 0)
            return copy_out(r->topics[i].topic, strlen(r->topics[i].topic), out, outlen);
    size_t pn = strlen(r->prefix);
    size_t fn = strlen(family);
    /* The prefix is not validated by route_new (it cannot report an error), so the joined name
     * is checked here: a name Kafka would refuse must not leave the router. */
    if (pn + fn > NAME_LEN_MAX || !out || pn + fn + 1 > outlen)
        return 0;
    memcpy(out, r->prefix, pn);
    memcpy(out + pn, family, fn);
    out[pn + fn] = '\0';
    if (!topic_ok(out, pn + fn)) {
        out[0] = '\0';
        return 0;
    }
    return pn + fn;
}

void route_free(route_t *r) {
    if (!r)
        return;
    for (size_t i = 0; i < r->rule_cnt; i++) {
        free(r->rules[i].pattern);
        free(r->rules[i].family);
    }
    for (size_t i = 0; i < r->topic_cnt; i++) {
        free(r->topics[i].family);
        free(r->topics[i].topic);
    }
    free(r->rules);
    free(r->topics);
    free(r->prefix);
    free(r);
}
