/* msg.c: the record type shared by the normaliser, the spool and the producer. */
#include "msg.h"

#include <stdlib.h>
#include <string.h>

static char *dupn(const void *p, size_t n) {
    char *s = malloc(n + 1);
    if (!s)
        return NULL;
    if (n)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

int msg_add_header(msg_t *m, const char *name, const void *value, size_t value_len) {
    size_t cap = m->header_cap < m->header_cnt ? m->header_cnt : m->header_cap;
    if (m->header_cnt == cap) {
        size_t ncap = cap ? cap * 2 : 4; /* a record has 2 headers, 10 in binary mode */
        msg_header_t *h = realloc(m->headers, ncap * sizeof *h);
        if (!h)
            return -1;
        m->headers = h;
        cap = ncap;
    }
    m->header_cap = cap;
    size_t nl = strlen(name);
    char *block = malloc(nl + 1 + value_len + 1);
    if (!block)
        return -1;
    memcpy(block, name, nl + 1);
    if (value_len)
        memcpy(block + nl + 1, value, value_len);
    block[nl + 1 + value_len] = '\0';
    msg_header_t *h = &m->headers[m->header_cnt++];
    h->name = block;
    h->name_len = nl;
    h->value = block + nl + 1;
    h->value_len = value_len;
    h->packed = 1;
    return 0;
}

const msg_header_t *msg_header(const msg_t *m, const char *name) {
    for (size_t i = 0; i < m->header_cnt; i++)
        if (strcmp(m->headers[i].name, name) == 0)
            return &m->headers[i];
    return NULL;
}

int msg_copy(msg_t *dst, const msg_t *src) {
    memset(dst, 0, sizeof *dst);
    dst->accept_ms = src->accept_ms;
    memcpy(dst->id, src->id, sizeof dst->id);
    dst->key_len = src->key_len;
    dst->value_len = src->value_len;
    if (!(dst->topic = dupn(src->topic, strlen(src->topic))))
        goto fail;
    if (src->key && !(dst->key = dupn(src->key, src->key_len)))
        goto fail;
    if (!(dst->value = dupn(src->value, src->value_len)))
        goto fail;
    for (size_t i = 0; i < src->header_cnt; i++)
        if (msg_add_header(dst, src->headers[i].name, src->headers[i].value,
                           src->headers[i].value_len) != 0)
            goto fail;
    return 0;
fail:
    msg_free(dst);
    return -1;
}

void msg_free(msg_t *m) {
    if (!m)
        return;
    free(m->topic);
    free(m->key);
    free(m->value);
    for (size_t i = 0; i < m->header_cnt; i++) {
        free(m->headers[i].name);
        if (!m->headers[i].packed)
            free(m->headers[i].value);
    }
    free(m->headers);
    memset(m, 0, sizeof *m);
}
