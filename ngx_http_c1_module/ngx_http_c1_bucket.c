
/*
 * ngx_http_c1_module: a token bucket's arithmetic (see
 * ngx_http_c1_bucket.h).  The refill is computed in doubles and floored
 * to milli-tokens, the same way Redis's script does it
 * (ngx_http_c1_redis_scripts.h), so that both stores agree.
 */


#include <stdio.h>
#include <string.h>

#include "ngx_http_c1_bucket.h"


/* the largest spent level kept: an overrun never wraps */
#define C1_BUCKET_LEVEL_MAX  ((int64_t) 1 << 62)


/* what was spent, refilled from stamp to now (never below 0) */

int64_t
c1_bucket_level(int64_t spent, uint64_t stamp, uint64_t now,
    const c1_bucket_limit_t *l)
{
    double  refill;

    if (spent <= 0) {
        return 0;
    }

    if (now <= stamp || l->window == 0) {
        return spent;
    }

    refill = (double) (now - stamp) * (double) l->rate * 1000.0
             / (double) l->window;

    if (refill >= (double) spent) {
        return 0;
    }

    return spent - (int64_t) refill;
}


/* a level with tokens more spent */

int64_t
c1_bucket_debit(int64_t level, uint64_t tokens)
{
    if (level < 0) {
        level = 0;
    }

    if (tokens >= (uint64_t) (C1_BUCKET_LEVEL_MAX - level) / 1000) {
        return C1_BUCKET_LEVEL_MAX;
    }

    return level + (int64_t) tokens * 1000;
}


/* ms until the level is back to 0: as long as a key must be kept */

uint64_t
c1_bucket_drain(int64_t level, const c1_bucket_limit_t *l)
{
    double  ms;

    if (level <= 0 || l->rate == 0) {
        return 0;
    }

    ms = (double) level * (double) l->window / ((double) l->rate * 1000.0);

    if (ms > (double) UINT64_MAX / 2) {
        return UINT64_MAX / 2;
    }

    return (uint64_t) ms + ((double) (uint64_t) ms < ms);
}


void
c1_bucket_state(int64_t level, const c1_bucket_limit_t *l,
    c1_bucket_state_t *st)
{
    int64_t  cap, need;

    if (level < 0) {
        level = 0;
    }

    cap = (int64_t) l->capacity * 1000;

    st->remaining = (level >= cap) ? 0 : (uint64_t) (cap - level) / 1000;
    st->reset = c1_bucket_drain(level, l);

    /* one whole token left: the level down to cap - 1000 */

    need = level - (cap - 1000);

    st->retry = (st->remaining || need <= 0) ? 0 : c1_bucket_drain(need, l);
}


/*
 * ms as OpenAI's x-ratelimit-reset-* headers write it (Go's durations,
 * to the ms): "0s", "17ms", "1s", "8.64s", "6m0s", "2h0m0.5s"
 */

size_t
c1_bucket_duration(uint64_t ms, char *buf)
{
    int       n;
    char     *p, frac[8];
    uint64_t  h, m, s, f;

    if (ms == 0) {
        memcpy(buf, "0s", 3);
        return 2;
    }

    if (ms < 1000) {
        return (size_t) snprintf(buf, C1_BUCKET_DURATION_LEN, "%ums",
                                 (unsigned) ms);
    }

    h = ms / 3600000;
    m = ms / 60000 % 60;
    s = ms / 1000 % 60;
    f = ms % 1000;

    frac[0] = '\0';

    if (f) {
        snprintf(frac, sizeof(frac), ".%03u", (unsigned) f);

        for (p = frac + strlen(frac) - 1; *p == '0'; p--) {
            *p = '\0';
        }
    }

    if (h) {
        n = snprintf(buf, C1_BUCKET_DURATION_LEN, "%lluh%um%u%ss",
                     (unsigned long long) h, (unsigned) m, (unsigned) s,
                     frac);

    } else if (m) {
        n = snprintf(buf, C1_BUCKET_DURATION_LEN, "%um%u%ss", (unsigned) m,
                     (unsigned) s, frac);

    } else {
        n = snprintf(buf, C1_BUCKET_DURATION_LEN, "%u%ss", (unsigned) s,
                     frac);
    }

    return (n < 0) ? 0 : (size_t) n;
}


/* tokens guessed from bytes of text: one per four, as OpenAI counts */

uint64_t
c1_bucket_estimate(size_t bytes)
{
    return ((uint64_t) bytes + 3) / 4;
}
