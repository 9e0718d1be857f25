
/*
 * ngx_http_c1_module: the Lua scripts of the Redis thread store, one per
 * operation, each run atomically by Redis (EVAL).
 *
 * Keys of owner O's thread T, with TK = prefix "t:" len(O) ":" O ":" T:
 *   TK:m  hash: title, created, updated (ms), score
 *   TK:l  list: messages, each role ("u" user, "a" assistant, "c" the
 *         assistant's tool calls, "t" a tool's result) time "\n" id "\n"
 *         content
 *   TK:k  the turn's lock: the holder's token, with an expiry
 * and prefix "o:" len(O) ":" O, the owner's index (a sorted set of
 * thread ids by score: updated ms * 1024 + prefix "seq" mod 1024).
 *
 * Every script answers an array whose first element says how it went:
 * 0 no such thread, 1 done, 2 busy (a turn runs), 3 no such message,
 * 4 the message has another role.
 */


#ifndef _NGX_HTTP_C1_REDIS_SCRIPTS_H_INCLUDED_
#define _NGX_HTTP_C1_REDIS_SCRIPTS_H_INCLUDED_


/* a key of the thread holding another kind of value: nothing is written */
#define NGX_HTTP_C1_REDIS_KINDS(check)                                        \
    "local function wrong(k, want) "                                          \
    "local t = redis.call('TYPE', k)['ok'] "                                  \
    "return t ~= 'none' and t ~= want end "                                   \
    "if " check " then return redis.error_reply('WRONGTYPE a key of this "    \
    "thread holds the wrong kind of value') end "

#define NGX_HTTP_C1_REDIS_THREAD_KINDS                                        \
    NGX_HTTP_C1_REDIS_KINDS("wrong(KEYS[1], 'hash') "                         \
                            "or wrong(KEYS[2], 'list') "                      \
                            "or wrong(KEYS[3], 'string')")

#define NGX_HTTP_C1_REDIS_ALL_KINDS                                           \
    NGX_HTTP_C1_REDIS_KINDS("wrong(KEYS[1], 'hash') "                         \
                            "or wrong(KEYS[2], 'list') "                      \
                            "or wrong(KEYS[3], 'string') "                    \
                            "or wrong(KEYS[4], 'zset') "                      \
                            "or wrong(KEYS[5], 'string')")


#define NGX_HTTP_C1_REDIS_SCORE                                               \
    "local function score(now, seq) "                                         \
    "return string.format('%.0f', tonumber(now) * 1024 "                      \
    "+ redis.call('INCR', seq) % 1024) end "


/* KEYS m l k; ARGV token ttl load inactive */
#define NGX_HTTP_C1_REDIS_BEGIN                                               \
    NGX_HTTP_C1_REDIS_THREAD_KINDS                                            \
    "local t = redis.call('HMGET', KEYS[1], 'title', 'created', 'updated') "  \
    "if not redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then "   \
    "return {2} end "                                                         \
    "local l = {} "                                                           \
    "if t[2] then "                                                           \
    "redis.call('PEXPIRE', KEYS[1], ARGV[4]) "                                \
    "redis.call('PEXPIRE', KEYS[2], ARGV[4]) "                                \
    "if ARGV[3] == '1' then l = redis.call('LRANGE', KEYS[2], 0, -1) end "    \
    "end "                                                                    \
    "return {1, t[1], t[2], t[3], l}"


/* KEYS m l k o seq; ARGV token max replace title now inactive thread n
   (id packed) x n */
#define NGX_HTTP_C1_REDIS_COMMIT                                              \
    NGX_HTTP_C1_REDIS_ALL_KINDS                                               \
    NGX_HTTP_C1_REDIS_SCORE                                                   \
    "if redis.call('GET', KEYS[3]) ~= ARGV[1] then return {0} end "           \
    "local have = {} "                                                        \
    "if ARGV[3] == '1' then redis.call('DEL', KEYS[2]) else "                 \
    "for _, m in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do "            \
    "local id = string.match(m, '^[^\\n]*\\n([^\\n]*)\\n') "                  \
    "if id then have[id] = true end end end "                                 \
    "for i = 0, tonumber(ARGV[8]) - 1 do "                                    \
    "local id = ARGV[9 + 2 * i] "                                             \
    "if ARGV[3] == '1' or not have[id] then "                                 \
    "have[id] = true "                                                        \
    "redis.call('RPUSH', KEYS[2], ARGV[10 + 2 * i]) end end "                 \
    "redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1) "                   \
    "redis.call('HSETNX', KEYS[1], 'title', ARGV[4]) "                        \
    "redis.call('HSETNX', KEYS[1], 'created', ARGV[5]) "                      \
    "local s = score(ARGV[5], KEYS[5]) "                                      \
    "redis.call('HSET', KEYS[1], 'updated', ARGV[5], 'score', s) "            \
    "redis.call('ZADD', KEYS[4], s, ARGV[7]) "                                \
    "redis.call('PEXPIRE', KEYS[1], ARGV[6]) "                                \
    "redis.call('PEXPIRE', KEYS[2], ARGV[6]) "                                \
    "redis.call('PEXPIRE', KEYS[4], ARGV[6]) "                                \
    "redis.call('DEL', KEYS[3]) "                                             \
    "local t = redis.call('HMGET', KEYS[1], 'title', 'created', 'updated') "  \
    "return {1, t[1], t[2], t[3]}"


/* KEYS k; ARGV token: the lock goes, if it is still the holder's */
#define NGX_HTTP_C1_REDIS_END                                                 \
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "                          \
    "redis.call('DEL', KEYS[1]) end return {1}"


/* KEYS k; ARGV token ttl: the lock lives on while its turn runs */
#define NGX_HTTP_C1_REDIS_RENEW                                               \
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "                          \
    "redis.call('PEXPIRE', KEYS[1], ARGV[2]) return {1} end return {0}"


/*
 * KEYS o; ARGV max limit tprefix: up to limit + 1 threads below the score
 * max ("+inf" or "(SCORE"), as id title created updated score each; an
 * index entry whose thread is gone is dropped on the way
 */
#define NGX_HTTP_C1_REDIS_LIST                                                \
    "local out, n, max = {}, 0, ARGV[1] "                                     \
    "local want = tonumber(ARGV[2]) + 1 "                                     \
    "while n < want do "                                                      \
    "local ask = want - n "                                                   \
    "local z = redis.call('ZREVRANGEBYSCORE', KEYS[1], max, '-inf', "         \
    "'WITHSCORES', 'LIMIT', 0, ask) "                                         \
    "if #z == 0 then break end "                                              \
    "for i = 1, #z, 2 do "                                                    \
    "local t = redis.call('HMGET', ARGV[3] .. z[i] .. ':m', "                 \
    "'title', 'created', 'updated') "                                         \
    "if t[2] then "                                                           \
    "n = n + 1 "                                                              \
    "out[#out + 1] = z[i] out[#out + 1] = t[1] or '' "                        \
    "out[#out + 1] = t[2] out[#out + 1] = t[3] or t[2] "                      \
    "out[#out + 1] = z[i + 1] "                                               \
    "else redis.call('ZREM', KEYS[1], z[i]) end "                             \
    "max = '(' .. z[i + 1] end "                                              \
    "if #z < 2 * ask then break end end "                                     \
    "return {1, out}"


/* KEYS m l; ARGV inactive */
#define NGX_HTTP_C1_REDIS_GET                                                 \
    "local t = redis.call('HMGET', KEYS[1], 'title', 'created', 'updated') "  \
    "if not t[2] then return {0} end "                                        \
    "redis.call('PEXPIRE', KEYS[1], ARGV[1]) "                                \
    "redis.call('PEXPIRE', KEYS[2], ARGV[1]) "                                \
    "return {1, t[1], t[2], t[3], redis.call('LRANGE', KEYS[2], 0, -1)}"


/* KEYS m o seq; ARGV thread title now inactive */
#define NGX_HTTP_C1_REDIS_CREATE                                              \
    NGX_HTTP_C1_REDIS_KINDS("wrong(KEYS[1], 'hash') "                         \
                            "or wrong(KEYS[2], 'zset') "                      \
                            "or wrong(KEYS[3], 'string')")                    \
    NGX_HTTP_C1_REDIS_SCORE                                                   \
    "if redis.call('EXISTS', KEYS[1]) == 1 then return {5} end "              \
    "local s = score(ARGV[3], KEYS[3]) "                                      \
    "redis.call('HSET', KEYS[1], 'title', ARGV[2], 'created', ARGV[3], "      \
    "'updated', ARGV[3], 'score', s) "                                        \
    "redis.call('ZADD', KEYS[2], s, ARGV[1]) "                                \
    "redis.call('PEXPIRE', KEYS[1], ARGV[4]) "                                \
    "redis.call('PEXPIRE', KEYS[2], ARGV[4]) "                                \
    "return {1, ARGV[2], ARGV[3], ARGV[3]}"


#define NGX_HTTP_C1_REDIS_THERE                                               \
    "if redis.call('EXISTS', KEYS[3]) == 1 then return {2} end "              \
    "if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end "


#define NGX_HTTP_C1_REDIS_TOUCH                                               \
    "local s = score(ARGV[3], KEYS[5]) "                                      \
    "redis.call('HSET', KEYS[1], 'updated', ARGV[3], 'score', s) "            \
    "redis.call('ZADD', KEYS[4], s, ARGV[1]) "                                \
    "redis.call('PEXPIRE', KEYS[1], ARGV[4]) "                                \
    "redis.call('PEXPIRE', KEYS[2], ARGV[4]) "                                \
    "redis.call('PEXPIRE', KEYS[4], ARGV[4]) "


/* KEYS m l k o seq; ARGV thread title now inactive */
#define NGX_HTTP_C1_REDIS_RENAME                                              \
    NGX_HTTP_C1_REDIS_ALL_KINDS                                               \
    NGX_HTTP_C1_REDIS_SCORE                                                   \
    NGX_HTTP_C1_REDIS_THERE                                                   \
    "redis.call('HSET', KEYS[1], 'title', ARGV[2]) "                          \
    NGX_HTTP_C1_REDIS_TOUCH                                                   \
    "local t = redis.call('HMGET', KEYS[1], 'title', 'created', 'updated') "  \
    "return {1, t[1], t[2], t[3]}"


/* KEYS m l k o seq; ARGV thread id now inactive role content */
#define NGX_HTTP_C1_REDIS_REPLACE                                             \
    NGX_HTTP_C1_REDIS_ALL_KINDS                                               \
    NGX_HTTP_C1_REDIS_SCORE                                                   \
    NGX_HTTP_C1_REDIS_THERE                                                   \
    "for i, m in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do "            \
    "local head, id = string.match(m, '^([^\\n]*)\\n([^\\n]*)\\n') "          \
    "if id == ARGV[2] then "                                                  \
    "if ARGV[5] ~= '' and ARGV[5] ~= string.sub(head, 1, 1) then "            \
    "return {4} end "                                                         \
    "local new = head .. '\\n' .. id .. '\\n' .. ARGV[6] "                    \
    "redis.call('LSET', KEYS[2], i - 1, new) "                                \
    NGX_HTTP_C1_REDIS_TOUCH                                                   \
    "local t = redis.call('HMGET', KEYS[1], 'title', 'created', 'updated') "  \
    "return {1, t[1], t[2], t[3], {new}} end end "                            \
    "return {3}"


/* KEYS m l k o; ARGV thread */
#define NGX_HTTP_C1_REDIS_DELETE                                              \
    NGX_HTTP_C1_REDIS_KINDS("wrong(KEYS[1], 'hash') "                         \
                            "or wrong(KEYS[2], 'list') "                      \
                            "or wrong(KEYS[3], 'string') "                    \
                            "or wrong(KEYS[4], 'zset')")                      \
    NGX_HTTP_C1_REDIS_THERE                                                   \
    "redis.call('DEL', KEYS[1], KEYS[2]) "                                    \
    "redis.call('ZREM', KEYS[4], ARGV[1]) "                                   \
    "return {1}"


/*
 * Token buckets (c1_limit_tokens_zone store=), with BK = prefix "b:"
 * len(Z) ":" Z ":" the bucket's id, a hash: s, milli-tokens spent; t,
 * when (ms, Redis's own clock: the same for every node).  The refill is
 * ngx_http_c1_bucket.c's, to the same floor.
 */
#define NGX_HTTP_C1_REDIS_BUCKET                                              \
    NGX_HTTP_C1_REDIS_KINDS("wrong(KEYS[1], 'hash')")                         \
    "local tm = redis.call('TIME') "                                          \
    "local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000) "\
    "local rate, window = tonumber(ARGV[1]), tonumber(ARGV[2]) "              \
    "local b = redis.call('HMGET', KEYS[1], 's', 't') "                       \
    "local spent, stamp = tonumber(b[1]) or 0, tonumber(b[2]) or now "        \
    "if spent > 0 and now > stamp then "                                      \
    "local refill = (now - stamp) * rate * 1000.0 / window "                  \
    "if refill >= spent then spent = 0 "                                      \
    "else spent = spent - math.floor(refill) end end "

/* KEYS b; ARGV rate window: {1, spent now} */
#define NGX_HTTP_C1_REDIS_LIMIT                                               \
    NGX_HTTP_C1_REDIS_BUCKET                                                  \
    "return {1, spent}"

/* KEYS b; ARGV rate window tokens: {1, spent after}, kept till refilled
 * (then it is full: as good as no key) */
#define NGX_HTTP_C1_REDIS_DEBIT                                               \
    "if redis.replicate_commands then redis.replicate_commands() end "        \
    NGX_HTTP_C1_REDIS_BUCKET                                                  \
    "spent = spent + tonumber(ARGV[3]) * 1000 "                               \
    "redis.call('HSET', KEYS[1], 's', string.format('%.0f', spent), "         \
    "'t', string.format('%.0f', now)) "                                       \
    "redis.call('PEXPIRE', KEYS[1], string.format('%.0f', "                   \
    "math.max(math.ceil(spent * window / (rate * 1000.0)), 1))) "             \
    "return {1, spent}"


#endif /* _NGX_HTTP_C1_REDIS_SCRIPTS_H_INCLUDED_ */
