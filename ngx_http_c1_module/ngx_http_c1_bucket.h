
/*
 * ngx_http_c1_module: a token bucket's arithmetic (c1_limit_tokens), the
 * same for every store that keeps buckets.  Plain C: no nginx.
 *
 * A bucket holds what was spent, in milli-tokens, and when that was
 * counted.  It refills at rate tokens per window, continuously, and is
 * full at capacity (rate + burst): spent 0.  Spent may go above capacity
 * (an answer that ran over is let through); nothing is left then until
 * it refills.
 */


#ifndef _NGX_HTTP_C1_BUCKET_H_INCLUDED_
#define _NGX_HTTP_C1_BUCKET_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define C1_BUCKET_MINUTE     60000ULL
#define C1_BUCKET_HOUR       3600000ULL
#define C1_BUCKET_DAY        86400000ULL

/* the largest rate and burst: spent stays far from int64's bounds */
#define C1_BUCKET_MAX        1000000000ULL

/* the room taken by c1_bucket_duration() at most */
#define C1_BUCKET_DURATION_LEN  32


typedef struct {
    uint64_t              rate;             /* tokens per window */
    uint64_t              window;           /* ms */
    uint64_t              capacity;         /* tokens: rate + burst */
} c1_bucket_limit_t;


/* what a bucket tells at a time */
typedef struct {
    uint64_t              remaining;        /* whole tokens left */
    uint64_t              reset;            /* ms until full again */
    uint64_t              retry;            /* ms until 1 token is left;
                                               0: there is one */
} c1_bucket_state_t;


int64_t c1_bucket_level(int64_t spent, uint64_t stamp, uint64_t now,
    const c1_bucket_limit_t *l);
int64_t c1_bucket_debit(int64_t level, uint64_t tokens);
void c1_bucket_state(int64_t level, const c1_bucket_limit_t *l,
    c1_bucket_state_t *st);
uint64_t c1_bucket_drain(int64_t level, const c1_bucket_limit_t *l);
size_t c1_bucket_duration(uint64_t ms, char *buf);
uint64_t c1_bucket_estimate(size_t bytes);


#endif /* _NGX_HTTP_C1_BUCKET_H_INCLUDED_ */
