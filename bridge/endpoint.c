/* endpoint.c: builds the webhook endpoint set from the config and matches request paths. */
#include "endpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct endpoint {
    char *name;
    char *path;
    size_t path_len;
    auth_t *auth; /* NULL: no access control */
    route_t *router;
    norm_opts_t norm; /* norm.source points at source below */
    char *source;
    char *topic_prefix; /* for the log line; the router has its own copy */
};

struct endpoint_set {
    endpoint_t *eps;
    size_t count;
};

route_t *endpoint_router_from_config(const hb_config_t *cfg, char *errstr, size_t errlen) {
    char err[256];
    route_t *r = route_new(cfg->routing_topic_prefix);
    if (!r) {
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < cfg->routing_rules_cnt; i++) {
        const cfg_kv_t *kv = &cfg->routing_rules[i];
        if (route_add_rule(r, kv->name, kv->value, err, sizeof err) != HB_OK) {
            snprintf(errstr, errlen, "%s:%d: routing.rules: %s", cfg->path ? cfg->path : "config",
                     kv->line, err);
            goto fail;
        }
    }
    for (size_t i = 0; i < cfg->routing_topics_cnt; i++) {
        const cfg_kv_t *kv = &cfg->routing_topics[i];
        if (route_set_topic(r, kv->name, kv->value, err, sizeof err) != HB_OK) {
            snprintf(errstr, errlen, "%s:%d: routing.topics.%s: %s",
                     cfg->path ? cfg->path : "config", kv->line, kv->name, err);
            goto fail;
        }
    }
    return r;
fail:
    route_free(r);
    return NULL;
}

static void endpoint_clear(endpoint_t *ep) {
    free(ep->name);
    free(ep->path);
    auth_free(ep->auth);
    route_free(ep->router);
    free(ep->source);
    free(ep->topic_prefix);
}

/* The errors of auth.c and the router name the file and line; with several endpoints the
 * endpoint is named too (an inherited top-level entry is then found through it). */
static void name_endpoint(char *errstr, size_t errlen, const hb_config_t *top, const char *ep,
                          const char *err) {
    if (top->endpoints_listed)
        snprintf(errstr, errlen, "%s (in endpoint '%s')", err, ep);
    else
        snprintf(errstr, errlen, "%s", err);
}

static int endpoint_build(endpoint_t *ep, const hb_config_t *top, const cfg_endpoint_t *ce,
                          char *errstr, size_t errlen) {
    const hb_config_t *cfg = ce->cfg;
    char err[1024];
    if (!(ep->name = strdup(ce->name)) || !(ep->path = strdup(cfg->http_path)) ||
        !(ep->source = strdup(cfg->envelope_source)) ||
        !(ep->topic_prefix = strdup(cfg->routing_topic_prefix))) {
        snprintf(errstr, errlen, "out of memory");
        return -1;
    }
    ep->path_len = strlen(ep->path);
    if (!(ep->auth = auth_from_config(cfg, err, sizeof err))) {
        name_endpoint(errstr, errlen, top, ce->name, err);
        return -1;
    }
    if (!auth_enabled(ep->auth)) {
        auth_free(ep->auth);
        ep->auth = NULL;
    }
    if (!(ep->router = endpoint_router_from_config(cfg, err, sizeof err))) {
        name_endpoint(errstr, errlen, top, ce->name, err);
        return -1;
    }
    ep->norm.source = ep->source;
    ep->norm.mode = cfg->envelope_mode == CFG_MODE_BINARY ? NORM_BINARY : NORM_STRUCTURED;
    ep->norm.max_depth = (int)cfg->http_json_max_depth;
    return 0;
}

endpoint_set_t *endpoint_set_new(const hb_config_t *cfg, char *errstr, size_t errlen) {
    endpoint_set_t *set = calloc(1, sizeof *set);
    if (!set || !(set->eps = calloc(cfg->endpoints_cnt ? cfg->endpoints_cnt : 1,
                                    sizeof *set->eps))) {
        snprintf(errstr, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < cfg->endpoints_cnt; i++) {
        set->count = i + 1; /* so that a failed build is freed too */
        if (endpoint_build(&set->eps[i], cfg, &cfg->endpoints[i], errstr, errlen) != 0)
            goto fail;
    }
    return set;
fail:
    endpoint_set_free(set);
    return NULL;
}

void endpoint_set_free(endpoint_set_t *set) {
    if (!set)
        return;
    for (size_t i = 0; i < set->count; i++)
        endpoint_clear(&set->eps[i]);
    free(set->eps);
    free(set);
}

size_t endpoint_set_count(const endpoint_set_t *set) { return set ? set->count : 0; }

const endpoint_t *endpoint_set_get(const endpoint_set_t *set, size_t i) {
    return set && i < set->count ? &set->eps[i] : NULL;
}

int endpoint_set_match(const endpoint_set_t *set, const char *path, const char **path_token,
                       const char **under) {
    *path_token = NULL;
    *under = NULL;
    if (!set)
        return -1;
    for (size_t i = 0; i < set->count; i++)
        if (strcmp(path, set->eps[i].path) == 0)
            return (int)i;
    /* Tokens hold no '/', so only the endpoint whose path is everything before the last '/'
     * can match by token. */
    const char *slash = strrchr(path, '/');
    for (size_t i = 0; i < set->count; i++) {
        const endpoint_t *ep = &set->eps[i];
        if (strncmp(path, ep->path, ep->path_len) != 0 || path[ep->path_len] != '/')
            continue;
        if (slash == path + ep->path_len && slash[1] && auth_uses_tokens(ep->auth)) {
            *path_token = slash + 1;
            return (int)i;
        }
        if (!*under || ep->path_len > strlen(*under))
            *under = ep->path; /* the longest endpoint path above it */
    }
    return -1;
}

const char *endpoint_name(const endpoint_t *ep) { return ep->name; }
const char *endpoint_path(const endpoint_t *ep) { return ep->path; }
const auth_t *endpoint_auth(const endpoint_t *ep) { return ep->auth; }
const route_t *endpoint_router(const endpoint_t *ep) { return ep->router; }
const norm_opts_t *endpoint_norm(const endpoint_t *ep) { return &ep->norm; }

void endpoint_set_log(const endpoint_set_t *set, const char *verb) {
    for (size_t i = 0; set && i < set->count; i++) {
        const endpoint_t *ep = &set->eps[i];
        log_info("endpoint", verb, "endpoint", ep->name, "path", ep->path, "access_control",
                 ep->auth ? "on" : "off", "source", ep->source, "mode",
                 ep->norm.mode == NORM_BINARY ? "binary" : "structured", "topic_prefix",
                 ep->topic_prefix, NULL);
    }
}
