/* replay.c: the bounded webhook-id cache (see replay.h). */
#include "replay.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define KEY_LEN 32
#define NIL UINT32_MAX

typedef struct entry {
    unsigned char key[KEY_LEN];
    char id[MSG_ID_LEN + 1];
    int64_t expires_s;
    uint32_t next; /* in its bucket's chain */
    int used;
} entry_t;

struct replay {
    size_t size;
    entry_t *e;        /* a ring in insertion order: e[oldest] is overwritten next */
    uint32_t *buckets; /* 2 * size chain heads */
    size_t nbuckets, oldest;
    uint64_t hits; /* atomic */
    pthread_mutex_t lock; /* everything above but size and hits */
};

replay_t *replay_new(size_t size) {
    replay_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    if (pthread_mutex_init(&r->lock, NULL) != 0) {
        free(r);
        return NULL;
    }
    r->size = size;
    return r;
}

void replay_free(replay_t *r) {
    if (!r)
        return;
    pthread_mutex_destroy(&r->lock);
    free(r->e);
    free(r->buckets);
    free(r);
}

static void key_of(const char *endpoint, const char *wid, unsigned char key[KEY_LEN]) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 0;
    memset(key, 0, KEY_LEN);
    if (!ctx)
        return;
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1)
        if (EVP_DigestUpdate(ctx, endpoint, strlen(endpoint) + 1) == 1 &&
            EVP_DigestUpdate(ctx, wid, strlen(wid)) == 1)
            EVP_DigestFinal_ex(ctx, key, &n);
    EVP_MD_CTX_free(ctx);
}

static size_t bucket_of(const replay_t *r, const unsigned char key[KEY_LEN]) {
    uint64_t h;
    memcpy(&h, key, sizeof h);
    return (size_t)(h % r->nbuckets);
}

static entry_t *find(replay_t *r, const unsigned char key[KEY_LEN]) {
    if (!r->e)
        return NULL;
    for (uint32_t i = r->buckets[bucket_of(r, key)]; i != NIL; i = r->e[i].next)
        if (memcmp(r->e[i].key, key, KEY_LEN) == 0)
            return &r->e[i];
    return NULL;
}

int replay_lookup(replay_t *r, const char *endpoint, const char *webhook_id, int64_t now_s,
                  char *id_out) {
    if (!r || r->size == 0 || !webhook_id)
        return 0;
    unsigned char key[KEY_LEN];
    key_of(endpoint, webhook_id, key);
    pthread_mutex_lock(&r->lock);
    entry_t *e = find(r, key);
    int hit = e && e->expires_s >= now_s;
    if (hit)
        memcpy(id_out, e->id, MSG_ID_LEN + 1);
    pthread_mutex_unlock(&r->lock);
    if (hit)
        __atomic_fetch_add(&r->hits, 1, __ATOMIC_RELAXED);
    return hit;
}

static void unlink_entry(replay_t *r, uint32_t idx) {
    uint32_t *p = &r->buckets[bucket_of(r, r->e[idx].key)];
    while (*p != NIL && *p != idx)
        p = &r->e[*p].next;
    if (*p == idx)
        *p = r->e[idx].next;
    r->e[idx].used = 0;
}

void replay_store(replay_t *r, const char *endpoint, const char *webhook_id, const char *id,
                  int64_t expires_s) {
    if (!r || r->size == 0 || !webhook_id || strlen(id) != MSG_ID_LEN)
        return;
    unsigned char key[KEY_LEN];
    key_of(endpoint, webhook_id, key);
    pthread_mutex_lock(&r->lock);
    if (!r->e) {
        r->nbuckets = 2 * r->size;
        r->e = calloc(r->size, sizeof *r->e);
        r->buckets = malloc(r->nbuckets * sizeof *r->buckets);
        if (!r->e || !r->buckets) {
            free(r->e);
            free(r->buckets);
            r->e = NULL;
            r->buckets = NULL;
            pthread_mutex_unlock(&r->lock);
            return; /* out of memory: retries are published again, nothing worse */
        }
        for (size_t i = 0; i < r->nbuckets; i++)
            r->buckets[i] = NIL;
    }
    entry_t *e = find(r, key);
    if (!e) {
        uint32_t idx = (uint32_t)r->oldest;
        r->oldest = (r->oldest + 1) % r->size;
        if (r->e[idx].used)
            unlink_entry(r, idx);
        e = &r->e[idx];
        memcpy(e->key, key, KEY_LEN);
        size_t b = bucket_of(r, key);
        e->next = r->buckets[b];
        r->buckets[b] = idx;
        e->used = 1;
    }
    memcpy(e->id, id, MSG_ID_LEN + 1);
    e->expires_s = expires_s;
    pthread_mutex_unlock(&r->lock);
}

uint64_t replay_hits(const replay_t *r) {
    return r ? __atomic_load_n(&r->hits, __ATOMIC_RELAXED) : 0;
}
