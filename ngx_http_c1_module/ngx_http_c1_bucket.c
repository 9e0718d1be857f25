
/*
 * ngx_http_c1_module: a token bucket's arithmetic (see
 * ngx_http_c1_bucket.h).  The refill is computed in doubles and floored
 * to milli-tokens, the same way Redis's script does it
 * (ngx_http_c1_redis_scripts.h), so that both stores agree.
 */


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


/* a number's digits at p: where they end */

static char *
c1_bucket_digits(char *p, uint64_t n)
{
    char   tmp[20], *t;

    t = tmp + sizeof(tmp);

    do {
        *--t = (char) ('0' + n % 10);
        n /= 10;
    } while (n);

    memcpy(p, t, tmp + sizeof(tmp) - t);

    return p + (tmp + sizeof(tmp) - t);
}


/*
 * ms as OpenAI's x-ratelimit-reset-* headers write it (Go's durations,
 * to the ms): "0s", "17ms", "1s", "8.64s", "6m0s", "2h0m0.5s"; written
 * by hand, as it is on every limited answer
 */

size_t
c1_bucket_duration(uint64_t ms, char *buf)
{
    char      *p;
    uint64_t   h, f;

    p = buf;

    if (ms < 1000) {
        p = c1_bucket_digits(p, ms);

        if (ms) {
            *p++ = 'm';
        }

        *p++ = 's';
        *p = '\0';

        return p - buf;
    }

    h = ms / 3600000;

    if (h) {
        p = c1_bucket_digits(p, h);
        *p++ = 'h';
    }

    if (h || ms >= 60000) {
        p = c1_bucket_digits(p, ms / 60000 % 60);
        *p++ = 'm';
    }

    p = c1_bucket_digits(p, ms / 1000 % 60);

    f = ms % 1000;

    if (f) {
        *p++ = '.';
        *p++ = (char) ('0' + f / 100);

        if (f % 100) {
            *p++ = (char) ('0' + f / 10 % 10);

            if (f % 10) {
                *p++ = (char) ('0' + f % 10);
            }
        }
    }

    *p++ = 's';
    *p = '\0';

    return p - buf;
}


/* tokens guessed from bytes of text: one per four, as OpenAI counts */

uint64_t
c1_bucket_estimate(size_t bytes)
{
    return ((uint64_t) bytes + 3) / 4;
}
