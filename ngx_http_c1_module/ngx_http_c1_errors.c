
/*
 * ngx_http_c1_module: every error a request can end with, in one table:
 * its status, OpenAI error type and code, message, log level and the
 * metrics' outcome.  A request's first error is its outcome; it is set
 * here and nowhere else.
 */


#include "ngx_http_c1_module.h"


typedef struct {
    ngx_uint_t              status;     /* 0: the words' own, or given */
    char                   *type;       /* NULL: the words' own */
    char                   *code;
    char                   *param;
    char                   *message;    /* may hold one %d: the status */
    ngx_uint_t              level;      /* 0: not logged */
    char                   *log;        /* NULL: the message */
    ngx_http_c1_outcome_e   outcome;
} ngx_http_c1_error_row_t;


#define ngx_http_c1_invalid(status, code, param, message)                    \
    { status, "invalid_request_error", code, param, message, 0, NULL,        \
      NGX_HTTP_C1_OUTCOME_INVALID }

#define ngx_http_c1_upstream(status, code, message)                          \
    { status, "upstream_error", code, NULL, message, NGX_LOG_ERR, NULL,      \
      NGX_HTTP_C1_OUTCOME_UPSTREAM }


static ngx_http_c1_error_row_t  ngx_http_c1_errors[NGX_HTTP_C1_ERR_LAST] = {

    /* NGX_HTTP_C1_ERR_NONE */
    { 0, NULL, NULL, NULL, NULL, 0, NULL, NGX_HTTP_C1_OUTCOME_NONE },

    /* NGX_HTTP_C1_ERR_METHOD */
    ngx_http_c1_invalid(NGX_HTTP_NOT_ALLOWED, "method_not_allowed", NULL,
                        "this endpoint only takes POST requests"),

    /* NGX_HTTP_C1_ERR_METHOD_THREADS */
    ngx_http_c1_invalid(NGX_HTTP_NOT_ALLOWED, "method_not_allowed", NULL,
                        "this endpoint takes POST, and GET or DELETE of "
                        "a thread"),

    /* NGX_HTTP_C1_ERR_MEDIA_TYPE */
    ngx_http_c1_invalid(NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                        "unsupported_media_type", NULL,
                        "the request body must be application/json or "
                        "text/plain"),

    /* NGX_HTTP_C1_ERR_BAD_REQUEST: the request parser's words */
    { 0, NULL, NULL, NULL, NULL, NGX_LOG_INFO, "bad request: %s",
      NGX_HTTP_C1_OUTCOME_INVALID },

    /* NGX_HTTP_C1_ERR_NO_MODEL */
    { NGX_HTTP_INTERNAL_SERVER_ERROR, "server_error", "no_model", NULL,
      "no C1 model is configured", NGX_LOG_ERR,
      "\"c1_model\" evaluated to an empty string",
      NGX_HTTP_C1_OUTCOME_INVALID },

    /* NGX_HTTP_C1_ERR_THREAD_BUSY */
    ngx_http_c1_invalid(NGX_HTTP_CONFLICT, "thread_busy", "threadId",
                        "a turn is already running on this thread"),

    /* NGX_HTTP_C1_ERR_THREAD_RUNNING */
    ngx_http_c1_invalid(NGX_HTTP_CONFLICT, "thread_busy", "threadId",
                        "a turn is running on this thread"),

    /* NGX_HTTP_C1_ERR_THREAD_ID */
    ngx_http_c1_invalid(NGX_HTTP_BAD_REQUEST, "invalid_thread_id",
                        "threadId", "\"threadId\" must be 1 to 128 "
                        "printable ASCII characters"),

    /* NGX_HTTP_C1_ERR_THREAD_NOT_FOUND */
    ngx_http_c1_invalid(NGX_HTTP_NOT_FOUND, "thread_not_found", "threadId",
                        "no such thread"),

    /* NGX_HTTP_C1_ERR_OWNER_REQUIRED */
    { NGX_HTTP_UNAUTHORIZED, "authentication_error", "owner_required", NULL,
      "this request has no owner for its threads (\"c1_history_owner\" "
      "is empty)", NGX_LOG_INFO, NULL, NGX_HTTP_C1_OUTCOME_INVALID },

    /* NGX_HTTP_C1_ERR_OWNER_INVALID */
    ngx_http_c1_invalid(NGX_HTTP_BAD_REQUEST, "invalid_owner", NULL,
                        "the owner of this request's threads is longer "
                        "than 256 bytes"),

    /* NGX_HTTP_C1_ERR_ROUTE */
    ngx_http_c1_invalid(NGX_HTTP_NOT_FOUND, "unknown_route", NULL,
                        "no such route of the thread API: get, get/ID, "
                        "create, update/ID, delete/ID, message/ID"),

    /* NGX_HTTP_C1_ERR_API_METHOD: Allow says which it takes */
    ngx_http_c1_invalid(NGX_HTTP_NOT_ALLOWED, "method_not_allowed", NULL,
                        "this route does not take this method"),

    /* NGX_HTTP_C1_ERR_API_BODY: the API parser's words */
    { 0, NULL, NULL, NULL, NULL, NGX_LOG_INFO, "bad request: %s",
      NGX_HTTP_C1_OUTCOME_INVALID },

    /* NGX_HTTP_C1_ERR_API_MEDIA_TYPE */
    ngx_http_c1_invalid(NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                        "unsupported_media_type", NULL,
                        "the request body must be application/json"),

    /* NGX_HTTP_C1_ERR_LIMIT */
    ngx_http_c1_invalid(NGX_HTTP_BAD_REQUEST, "invalid_limit", "limit",
                        "\"limit\" must be a number from 1 to 200"),

    /* NGX_HTTP_C1_ERR_CURSOR */
    ngx_http_c1_invalid(NGX_HTTP_BAD_REQUEST, "invalid_cursor", "cursor",
                        "\"cursor\" must be a nextCursor this API gave"),

    /* NGX_HTTP_C1_ERR_MESSAGE_ID */
    ngx_http_c1_invalid(NGX_HTTP_BAD_REQUEST, "invalid_message_id", "id",
                        "a message id must be 1 to 128 printable ASCII "
                        "characters"),

    /* NGX_HTTP_C1_ERR_MESSAGE_NOT_FOUND */
    ngx_http_c1_invalid(NGX_HTTP_NOT_FOUND, "message_not_found", "id",
                        "no such message in this thread"),

    /* NGX_HTTP_C1_ERR_MESSAGE_ROLE */
    ngx_http_c1_invalid(NGX_HTTP_BAD_REQUEST, "invalid_message", "role",
                        "the message has another role"),

    /* NGX_HTTP_C1_ERR_HISTORY_FULL */
    { NGX_HTTP_SERVICE_UNAVAILABLE, "server_error", "history_full", NULL,
      "the thread store has no room for this now", NGX_LOG_WARN,
      "the thread store is full, even after evicting the least recently "
      "used threads", NGX_HTTP_C1_OUTCOME_INVALID },

    /* NGX_HTTP_C1_ERR_STORE: the store logs why, once a cause */
    { NGX_HTTP_SERVICE_UNAVAILABLE, "server_error", "history_unavailable",
      NULL, "the thread store cannot be reached now", NGX_LOG_INFO, NULL,
      NGX_HTTP_C1_OUTCOME_UPSTREAM },

    /* NGX_HTTP_C1_ERR_RATE_LIMITED: c1_limit_tokens' words (logged there) */
    { 0, NULL, NULL, NULL, NULL, 0, NULL, NGX_HTTP_C1_OUTCOME_LIMITED },

    /* NGX_HTTP_C1_ERR_ANSWER_TOO_LARGE */
    { NGX_HTTP_BAD_GATEWAY, "upstream_error", "answer_too_large", NULL,
      "C1's answer is larger than this server accepts", NGX_LOG_ERR,
      "C1's answer is larger than \"c1_max_response_size\"",
      NGX_HTTP_C1_OUTCOME_UPSTREAM },

    /* NGX_HTTP_C1_ERR_TIMEOUT */
    ngx_http_c1_upstream(NGX_HTTP_GATEWAY_TIME_OUT, "c1_timeout",
                         "C1 did not answer in time"),

    /* NGX_HTTP_C1_ERR_UNREACHABLE */
    ngx_http_c1_upstream(NGX_HTTP_BAD_GATEWAY, "c1_unreachable",
                         "C1 could not be reached"),

    /* NGX_HTTP_C1_ERR_BROKE_OFF */
    ngx_http_c1_upstream(NGX_HTTP_BAD_GATEWAY, "c1_unreachable",
                         "C1's answer broke off"),

    /* NGX_HTTP_C1_ERR_BAD_STATUS */
    ngx_http_c1_upstream(NGX_HTTP_BAD_GATEWAY, "bad_upstream_answer",
                         "C1 answered HTTP %d"),

    /* NGX_HTTP_C1_ERR_C1: an error of C1's, in our words */
    { 0, NULL, NULL, NULL, NULL, NGX_LOG_ERR, "C1 answered HTTP %d",
      NGX_HTTP_C1_OUTCOME_C1_ERROR },

    /* NGX_HTTP_C1_ERR_C1_PASSED: an OpenAI-style error of C1's, as it is */
    { 0, "upstream_error", "c1_error", NULL, "C1 answered HTTP %d",
      NGX_LOG_ERR, NULL, NGX_HTTP_C1_OUTCOME_C1_ERROR },

    /* NGX_HTTP_C1_ERR_BAD_ANSWER: the answer reader's words */
    { 0, NULL, NULL, NULL, NULL, NGX_LOG_ERR, NULL,
      NGX_HTTP_C1_OUTCOME_UPSTREAM },

    /* NGX_HTTP_C1_ERR_STREAM_BAD: the relay's words */
    { 0, NULL, NULL, NULL, NULL, NGX_LOG_ERR, NULL,
      NGX_HTTP_C1_OUTCOME_UPSTREAM },

    /* NGX_HTTP_C1_ERR_STREAM_BROKEN */
    ngx_http_c1_upstream(NGX_HTTP_BAD_GATEWAY, "c1_stream_broken",
                         "C1's stream broke off"),

    /* NGX_HTTP_C1_ERR_STREAM_SIZE */
    ngx_http_c1_upstream(NGX_HTTP_BAD_GATEWAY, "stream_limit",
                         "C1's stream ran over c1_stream_max_size"),

    /* NGX_HTTP_C1_ERR_STREAM_TIME */
    ngx_http_c1_upstream(NGX_HTTP_BAD_GATEWAY, "stream_limit",
                         "C1's stream ran over c1_stream_timeout"),

    /* NGX_HTTP_C1_ERR_STREAM_EMPTY */
    ngx_http_c1_upstream(NGX_HTTP_BAD_GATEWAY, "bad_upstream_stream",
                         "C1's stream ended without any event"),

    /* NGX_HTTP_C1_ERR_PAGE_TOO_LARGE */
    ngx_http_c1_invalid(NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                        "request_too_large", NULL,
                        "the request body is too large"),

    /* NGX_HTTP_C1_ERR_PAGE_CLIENT */
    ngx_http_c1_invalid(0, "invalid_request", NULL,
                        "the request could not be served (HTTP %d)"),

    /* NGX_HTTP_C1_ERR_PAGE_SERVER */
    { 0, "server_error", "internal_error", NULL,
      "the server could not answer (HTTP %d)", 0, NULL,
      NGX_HTTP_C1_OUTCOME_UPSTREAM }
};


/* an error's words: its row's, else those given (a parser's, C1's) */

void
ngx_http_c1_error_words(ngx_http_c1_err_e id, const c1_error_t *words,
    ngx_uint_t status, c1_error_t *err)
{
    ngx_http_c1_error_row_t  *row;

    row = &ngx_http_c1_errors[id];

    if (row->message) {
        c1_error_set(err, row->status ? (int) row->status : (int) status,
                     row->type, row->code, row->param, row->message,
                     (int) status);
        return;
    }

    if (words) {
        *err = *words;
        return;
    }

    c1_error_set(err, NGX_HTTP_INTERNAL_SERVER_ERROR, "server_error",
                 "internal_error", NULL, "the server could not answer");
}


/*
 * The request's error: the first one a request meets is the one it ends
 * with, and its outcome; a later one changes nothing.  Logged at its
 * row's level.
 */

void
ngx_http_c1_error(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    ngx_http_c1_err_e id, const c1_error_t *words, ngx_uint_t status)
{
    char                     *suffix;
    ngx_http_c1_error_row_t  *row;

    if (ctx->error != NGX_HTTP_C1_ERR_NONE) {
        return;
    }

    row = &ngx_http_c1_errors[id];

    ngx_http_c1_error_words(id, words, status, &ctx->err);

    ctx->error = id;

    if (ctx->outcome == NGX_HTTP_C1_OUTCOME_NONE) {
        ctx->outcome = row->outcome;
    }

    if (row->level == 0) {
        return;
    }

    suffix = (ctx->response.state == NGX_HTTP_C1_RESPONSE_STREAMING)
             ? ", after the client's stream began" : "";

    if (row->log == NULL) {
        ngx_log_error(row->level, r->connection->log, 0, "c1: %s%s",
                      ctx->err.message, suffix);

    } else if (id == NGX_HTTP_C1_ERR_BAD_REQUEST) {
        ngx_log_error(row->level, r->connection->log, 0, "c1: bad request: %s",
                      ctx->err.message);

    } else if (id == NGX_HTTP_C1_ERR_C1) {
        ngx_log_error(row->level, r->connection->log, 0,
                      "c1: C1 answered HTTP %ui", status);

    } else {
        ngx_log_error(row->level, r->connection->log, 0, "c1: %s%s",
                      row->log, suffix);
    }
}

