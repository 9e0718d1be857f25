
/*
 * ngx_http_c1_module: nginx glue shared by the handler and the filters.
 */


#ifndef _NGX_HTTP_C1_MODULE_H_INCLUDED_
#define _NGX_HTTP_C1_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_c1_proto.h"
#include "ngx_http_c1_history.h"


/* the first room taken for an answer whose length C1 did not give */
#define NGX_HTTP_C1_ANSWER_SIZE  32768


typedef struct {
    c1_history_t              *sh;
    ngx_slab_pool_t           *shpool;
    ngx_str_t                  name;
    size_t                     size;
    ngx_uint_t                 max_messages;
    time_t                     inactive;
} ngx_http_c1_zone_t;


typedef struct {
    ngx_array_t                zones;           /* of ngx_http_c1_zone_t * */
    ngx_shm_zone_t            *metrics_zone;    /* the counters */
} ngx_http_c1_main_conf_t;


typedef struct {
    ngx_str_t                  pass;            /* not inherited */
    ngx_str_t                  pass_args;
    ngx_str_t                  pass_file;       /* where c1_pass was set */
    ngx_uint_t                 pass_line;

    ngx_http_complex_value_t  *api_key;
    ngx_http_complex_value_t  *model;
    ngx_http_complex_value_t  *system_prompt;

    double                     temperature;     /* -1: unset */
    double                     top_p;           /* -1: unset */
    ngx_int_t                  max_tokens;
    ngx_array_t               *stop;            /* of ngx_str_t */
    size_t                     max_response_size;
    ngx_flag_t                 stream;
    ngx_flag_t                 stream_usage;
    size_t                     stream_max_size;
    ngx_msec_t                 stream_timeout;
    ngx_shm_zone_t            *history;
} ngx_http_c1_loc_conf_t;


typedef struct {
    ngx_http_request_t        *sr;

    c1_mode_e                  mode;

    ngx_uint_t                 status;          /* of the subrequest */
    ngx_int_t                  sr_rc;           /* first error rc seen */

    u_char                    *buf;             /* C1's answer, collected */
    size_t                     len;
    size_t                     size;

    ngx_str_t                  error;           /* JSON replacing a page */

    c1_relay_t                 relay;           /* a stream being relayed */

    ngx_http_c1_zone_t        *zone;            /* the turn's thread */
    c1_thread_t               *thread;
    uint64_t                   token;
    ngx_str_t                  thread_id;
    ngx_str_t                  prompt;          /* the user message */
    c1_buf_t                   answer;          /* a streamed answer, whole */

    off_t                      relayed;         /* bytes C1 streamed */
    ngx_event_t                deadline;        /* c1_stream_timeout */

    /* for variables and metrics */
    ngx_str_t                  model;
    long                       prompt_tokens;   /* -1: unknown */
    long                       completion_tokens;
    long                       total_tokens;
    ngx_msec_t                 start_msec;      /* the C1 call began */
    ngx_msec_t                 first_msec;      /* its first content */
    ngx_msec_t                 end_msec;        /* its answer ended */
    const char                *error_code;      /* of our error answer */
    ngx_chain_t               *in;              /* C1's bufs not yet read */
    ngx_chain_t               *free;
    ngx_chain_t               *busy;

    unsigned                   stream:1;
    unsigned                   own:1;           /* our answer: let it be */
    unsigned                   replace:1;       /* replace nginx's page */
    unsigned                   header_seen:1;
    unsigned                   too_large:1;
    unsigned                   broken:1;        /* C1 failed after header */
    unsigned                   aborted:1;       /* we stopped C1 */
    unsigned                   answered:1;
    unsigned                   streaming:1;     /* C1 streams to us */
    unsigned                   started:1;       /* the client has a header */
    unsigned                   ended:1;         /* C1's stream ended well */
    unsigned                   answer_lost:1;   /* too large to keep */
    unsigned                   finished:1;      /* the stream was ended */
    unsigned                   c1_status:1;     /* C1 answered an error */
    unsigned                   thread_op:1;     /* GET or DELETE */
    unsigned                   counted:1;
    unsigned                   over_size:1;     /* c1_stream_max_size */
    unsigned                   over_time:1;     /* c1_stream_timeout */
} ngx_http_c1_ctx_t;


extern ngx_module_t  ngx_http_c1_module;


ngx_int_t ngx_http_c1_filter_init(ngx_conf_t *cf);

ngx_int_t ngx_http_c1_add_variables(ngx_conf_t *cf);
ngx_int_t ngx_http_c1_metrics_init(ngx_conf_t *cf);
char *ngx_http_c1_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
void ngx_http_c1_stream_started(void);

char *ngx_http_c1_history_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_c1_history(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_c1_thread_begin(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx, ngx_shm_zone_t *shm_zone, c1_request_t *req,
    c1_turn_t **turns, size_t *nturns);
void ngx_http_c1_thread_commit(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    u_char *answer, size_t len);
ngx_int_t ngx_http_c1_thread_get(ngx_http_request_t *r,
    ngx_shm_zone_t *shm_zone, ngx_str_t *json);
ngx_int_t ngx_http_c1_thread_delete(ngx_http_request_t *r,
    ngx_shm_zone_t *shm_zone);
ngx_int_t ngx_http_c1_send_error(ngx_http_request_t *r, c1_error_t *err);
ngx_int_t ngx_http_c1_error_json(ngx_http_request_t *r, c1_error_t *err,
    ngx_str_t *json);
ngx_http_c1_ctx_t *ngx_http_c1_get_ctx(ngx_http_request_t *r);
ngx_int_t ngx_http_c1_start_stream(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx);
ngx_int_t ngx_http_c1_finish_stream(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx);


#endif /* _NGX_HTTP_C1_MODULE_H_INCLUDED_ */
