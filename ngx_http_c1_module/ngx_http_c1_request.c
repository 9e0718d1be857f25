
/*
 * ngx_http_c1_module: turning what a client sent into the body of a C1
 * chat-completions call.
 *
 * Three shapes are accepted: a text/plain body (the whole body is the
 * prompt), {"prompt": "text"} or {"prompt": {"role", "content", "id"}}
 * (the standalone pattern and <C1Chat>'s message), and the OpenAI shape
 * {"messages": [...], ...} (a key-hiding gateway).  The model is always
 * the configured one and the configured system prompt always goes first.
 * OpenUI Chat's body is the OpenAI shape with a "threadId" (and AG-UI's
 * fields, which never reach C1): it streams unless it says otherwise.
 */


#include <stdlib.h>
#include <string.h>

#include "ngx_http_c1_json.h"
#include "ngx_http_c1_history.h"


#define C1_BAD_REQUEST(err, code, param, ...)                                 \
    c1_error_set(err, 400, "invalid_request_error", code, param, __VA_ARGS__)


static int c1_request_prompt(c1_request_t *req, const char *text,
    size_t len, c1_error_t *err);
static int c1_check_messages(cJSON *messages, c1_error_t *err);
static cJSON *c1_message(const char *role, cJSON *content);
static int c1_add_settings(cJSON *req, const c1_settings_t *s);
static int c1_prompt_text(cJSON *prompt, cJSON **text, c1_error_t *err);
static int c1_request_id(cJSON *item, const char *code, const char *param,
    char *out, size_t *len, c1_error_t *err);
static int c1_request_agui(const char *name, cJSON *item);
static int c1_request_agui_message(cJSON *m);


/*
 * Parses and checks the client's body: its mode, whether it streams, the
 * prompt text (prompt mode) and the thread it belongs to.
 */

int
c1_request_parse(const unsigned char *in, size_t len, c1_body_type_e type,
    const c1_settings_t *s, c1_request_t *req, c1_error_t *err)
{
    int          rc;
    cJSON       *root, *prompt, *messages, *stream, *thread, *text;
    const char  *problem;

    memset(req, 0, sizeof(c1_request_t));
    req->stream = s->stream;

    text = NULL;

    if (type == C1_BODY_TEXT) {

        if (len == 0) {
            C1_BAD_REQUEST(err, "empty_prompt", "prompt",
                           "the prompt is empty");
            return C1_ERROR;
        }

        if (memchr(in, '\0', len) != NULL) {
            C1_BAD_REQUEST(err, "invalid_prompt", "prompt",
                           "the prompt contains a NUL byte");
            return C1_ERROR;
        }

        if (!c1_utf8_valid(in, len)) {
            C1_BAD_REQUEST(err, "invalid_utf8", "prompt",
                           "the prompt is not valid UTF-8");
            return C1_ERROR;
        }

        req->mode = C1_MODE_PROMPT;
        return c1_request_prompt(req, (const char *) in, len, err);
    }

    root = c1_json_parse(in, len, &problem);
    if (root == NULL) {
        C1_BAD_REQUEST(err, "invalid_json", NULL, "the request body %s",
                       problem);
        return C1_ERROR;
    }

    req->root = root;

    if (!cJSON_IsObject(root)) {
        C1_BAD_REQUEST(err, "invalid_body", NULL,
                       "the request body must be a JSON object");
        goto failed;
    }

    stream = cJSON_GetObjectItemCaseSensitive(root, "stream");

    if (stream != NULL && !cJSON_IsNull(stream)) {
        if (!cJSON_IsBool(stream)) {
            C1_BAD_REQUEST(err, "invalid_stream", "stream",
                           "\"stream\" must be true or false");
            goto failed;
        }

        req->stream = cJSON_IsTrue(stream);
    }

    prompt = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    messages = cJSON_GetObjectItemCaseSensitive(root, "messages");

    if (prompt != NULL && messages != NULL) {
        C1_BAD_REQUEST(err, "invalid_body", NULL,
                       "give either \"prompt\" or \"messages\", not both");
        goto failed;
    }

    if (prompt == NULL && messages == NULL) {
        C1_BAD_REQUEST(err, "missing_prompt", "prompt",
                       "the request needs a \"prompt\" (or OpenAI-style "
                       "\"messages\")");
        goto failed;
    }

    thread = cJSON_GetObjectItemCaseSensitive(root, "threadId");

    if (messages != NULL) {
        req->mode = C1_MODE_OPENAI;

        if (thread != NULL && !cJSON_IsNull(thread)) {

            /* OpenUI Chat's turn: it reads a stream */

            req->openui = 1;

            if (stream == NULL || cJSON_IsNull(stream)) {
                req->stream = 1;
            }

            if (s->history
                && !(cJSON_IsString(thread)
                     && strcmp(thread->valuestring, "ephemeral") == 0)
                && c1_request_id(thread, "invalid_thread_id", "threadId",
                                 req->thread_id, &req->thread_id_len, err)
                   != C1_OK)
            {
                return C1_ERROR;
            }
        }

        return c1_check_messages(messages, err);
    }

    req->mode = C1_MODE_PROMPT;

    rc = c1_prompt_text(prompt, &text, err);
    if (rc != C1_OK) {
        return rc;
    }

    /* the thread, and the ids of its two new messages, when kept */

    if (s->history && thread != NULL && !cJSON_IsNull(thread)) {
        if (c1_request_id(thread, "invalid_thread_id", "threadId",
                          req->thread_id, &req->thread_id_len, err)
            != C1_OK
            || (cJSON_IsObject(prompt)
                && c1_request_id(cJSON_GetObjectItemCaseSensitive(prompt,
                                                                  "id"),
                                 "invalid_message_id", "prompt.id",
                                 req->prompt_id, &req->prompt_id_len, err)
                   != C1_OK)
            || c1_request_id(cJSON_GetObjectItemCaseSensitive(root,
                                                              "responseId"),
                             "invalid_message_id", "responseId",
                             req->response_id, &req->response_id_len, err)
               != C1_OK)
        {
            return C1_ERROR;
        }
    }

    return c1_request_prompt(req, text->valuestring,
                             strlen(text->valuestring), err);

failed:

    return C1_ERROR;
}


/*
 * The body for C1: the model, the system prompt, the thread's history
 * (prompt mode), the prompt or the client's messages, the settings.
 */

int
c1_request_render(c1_request_t *req, const c1_settings_t *s,
    const c1_turn_t *history, size_t nhistory)
{
    size_t   i;
    cJSON   *root, *r, *msgs, *item, *next, *messages;

    root = req->root;

    r = cJSON_CreateObject();
    if (r == NULL) {
        return C1_NOMEM;
    }

    item = c1_json_string(&s->model);
    if (item == NULL) {
        goto nomem;
    }

    cJSON_AddItemToObject(r, "model", item);

    msgs = cJSON_AddArrayToObject(r, "messages");
    if (msgs == NULL) {
        goto nomem;
    }

    if (s->system_prompt.len) {
        item = c1_json_string(&s->system_prompt);
        if (item == NULL || (item = c1_message("system", item)) == NULL) {
            goto nomem;
        }

        cJSON_AddItemToArray(msgs, item);
    }

    if (req->mode == C1_MODE_PROMPT) {

        for (i = 0; i < nhistory; i++) {

            if (history[i].raw) {

                /* a tool round's message, as C1 had it */

                item = cJSON_ParseWithLength((const char *) history[i].data,
                                             history[i].len);
                if (!cJSON_IsObject(item)) {
                    cJSON_Delete(item);
                    continue;
                }

                cJSON_AddItemToArray(msgs, item);
                continue;
            }

            item = c1_json_string(&(c1_str_t) { history[i].data,
                                                history[i].len });
            if (item == NULL
                || (item = c1_message(history[i].role, item)) == NULL)
            {
                goto nomem;
            }

            cJSON_AddItemToArray(msgs, item);
        }

        item = c1_json_string(&(c1_str_t) {
                                  (const unsigned char *) req->prompt,
                                  req->prompt_len });
        if (item == NULL || (item = c1_message("user", item)) == NULL) {
            goto nomem;
        }

        cJSON_AddItemToArray(msgs, item);

    } else {

        /* the client's messages, without the frontend's "id" fields */

        messages = cJSON_GetObjectItemCaseSensitive(root, "messages");

        for (item = messages->child; item != NULL; item = next) {
            next = item->next;
            cJSON_DeleteItemFromObjectCaseSensitive(item, "id");

            if (req->openui && c1_request_agui_message(item) != C1_OK) {
                goto nomem;
            }

            cJSON_AddItemToArray(msgs,
                                 cJSON_DetachItemViaPointer(messages, item));
        }

        /* every other field of the client's passes through */

        for (item = root->child; item != NULL; item = next) {
            next = item->next;

            if (strcmp(item->string, "model") == 0
                || strcmp(item->string, "messages") == 0
                || strcmp(item->string, "stream") == 0
                || (req->openui && c1_request_agui(item->string, item)))
            {
                continue;
            }

            cJSON_AddItemToObject(r, item->string,
                                  cJSON_DetachItemViaPointer(root, item));
        }
    }

    if (c1_add_settings(r, s) != C1_OK) {
        goto nomem;
    }

    if (req->stream && cJSON_AddTrueToObject(r, "stream") == NULL) {
        goto nomem;
    }

    /* usage in a prompt stream: read by the module, never relayed */

    if (req->stream && (s->stream_usage || s->count_usage)
        && req->mode == C1_MODE_PROMPT)
    {
        item = cJSON_AddObjectToObject(r, "stream_options");

        if (item == NULL
            || cJSON_AddTrueToObject(item, "include_usage") == NULL)
        {
            goto nomem;
        }
    }

    /*
     * a token limit's usage in an OpenAI stream: asked for if the client
     * did not, and then kept from it
     */

    req->hide_usage = 0;

    if (req->stream && s->count_usage && req->mode == C1_MODE_OPENAI) {
        item = cJSON_GetObjectItemCaseSensitive(r, "stream_options");

        if (!cJSON_IsObject(item)) {
            cJSON_DeleteItemFromObjectCaseSensitive(r, "stream_options");
            item = cJSON_AddObjectToObject(r, "stream_options");
            if (item == NULL) {
                goto nomem;
            }
        }

        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(item,
                                                           "include_usage")))
        {
            cJSON_DeleteItemFromObjectCaseSensitive(item, "include_usage");

            if (cJSON_AddTrueToObject(item, "include_usage") == NULL) {
                goto nomem;
            }

            req->hide_usage = 1;
        }
    }

    req->body = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);

    if (req->body == NULL) {
        return C1_NOMEM;
    }

    req->len = strlen(req->body);

    return C1_OK;

nomem:

    cJSON_Delete(r);

    return C1_NOMEM;
}


/*
 * The same request for another model (a retry's fallback): the rendered
 * body with its "model" replaced, everything else as it was.
 */

int
c1_request_remodel(const char *body, size_t len, const c1_str_t *model,
    char **out, size_t *outlen)
{
    cJSON  *root, *item;

    *out = NULL;
    *outlen = 0;

    root = cJSON_ParseWithLength(body, len);

    if (!cJSON_IsObject(root)
        || cJSON_GetObjectItemCaseSensitive(root, "model") == NULL)
    {
        cJSON_Delete(root);
        return C1_ERROR;
    }

    item = c1_json_string(model);

    if (item == NULL
        || !cJSON_ReplaceItemInObjectCaseSensitive(root, "model", item))
    {
        cJSON_Delete(item);
        cJSON_Delete(root);
        return C1_NOMEM;
    }

    *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);

    if (*out == NULL) {
        return C1_NOMEM;
    }

    *outlen = strlen(*out);

    return C1_OK;
}


void
c1_request_free(c1_request_t *req)
{
    cJSON_Delete(req->root);
    free(req->prompt);
    free(req->body);

    req->root = NULL;
    req->prompt = NULL;
    req->body = NULL;
}


int
c1_request_build(const unsigned char *in, size_t len, c1_body_type_e type,
    const c1_settings_t *s, c1_request_t *req, c1_error_t *err)
{
    int    rc;
    char  *body;

    rc = c1_request_parse(in, len, type, s, req, err);

    if (rc == C1_OK) {
        rc = c1_request_render(req, s, NULL, 0);
    }

    body = req->body;
    req->body = NULL;
    c1_request_free(req);
    req->body = body;

    return rc;
}


/* the prompt text, copied; a blank one is refused */

static int
c1_request_prompt(c1_request_t *req, const char *text, size_t len,
    c1_error_t *err)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (text[i] != ' ' && text[i] != '\t' && text[i] != '\r'
            && text[i] != '\n')
        {
            break;
        }
    }

    if (i == len) {
        C1_BAD_REQUEST(err, "empty_prompt", "prompt", "the prompt is empty");
        return C1_ERROR;
    }

    req->prompt = malloc(len + 1);
    if (req->prompt == NULL) {
        return C1_NOMEM;
    }

    memcpy(req->prompt, text, len);
    req->prompt[len] = '\0';
    req->prompt_len = len;

    return C1_OK;
}


/*
 * The client's messages that a thread keeps (OpenUI's turn: they become
 * the thread's): the user's and the assistant's, with their text.
 */

int
c1_request_keep(c1_request_t *req, c1_request_keep_pt handler, void *data)
{
    int          rc, role;
    cJSON       *m, *item, *part, *text, *type, *id;
    c1_buf_t     joined;
    const char  *r;

    item = cJSON_GetObjectItemCaseSensitive(req->root, "messages");

    cJSON_ArrayForEach(m, item) {

        r = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "role"));

        if (r == NULL) {
            continue;
        }

        if (strcmp(r, "user") == 0) {
            role = C1_ROLE_USER;

        } else if (strcmp(r, "assistant") == 0) {
            role = C1_ROLE_ASSISTANT;

        } else {
            continue;
        }

        id = cJSON_GetObjectItemCaseSensitive(m, "id");

        if (!cJSON_IsString(id)
            || !c1_thread_id_valid((unsigned char *) id->valuestring,
                                   strlen(id->valuestring)))
        {
            id = NULL;
        }

        text = cJSON_GetObjectItemCaseSensitive(m, "content");

        if (cJSON_IsString(text)) {
            rc = handler(data, id ? (unsigned char *) id->valuestring : NULL,
                         id ? strlen(id->valuestring) : 0, role,
                         (unsigned char *) text->valuestring,
                         strlen(text->valuestring));

            if (rc != C1_OK) {
                return rc;
            }

            continue;
        }

        if (!cJSON_IsArray(text)) {
            continue;
        }

        /* parts: their text, one after another */

        memset(&joined, 0, sizeof(c1_buf_t));

        cJSON_ArrayForEach(part, text) {
            type = cJSON_GetObjectItemCaseSensitive(part, "type");
            item = cJSON_GetObjectItemCaseSensitive(part, "text");

            if (cJSON_IsString(type) && strcmp(type->valuestring, "text") == 0
                && cJSON_IsString(item)
                && c1_buf_append(&joined, item->valuestring,
                                 strlen(item->valuestring))
                   != C1_OK)
            {
                c1_buf_free(&joined);
                return C1_NOMEM;
            }
        }

        rc = handler(data, id ? (unsigned char *) id->valuestring : NULL,
                     id ? strlen(id->valuestring) : 0, role,
                     joined.data, joined.len);

        c1_buf_free(&joined);

        if (rc != C1_OK) {
            return rc;
        }
    }

    return C1_OK;
}


/* a thread's or a message's id given by the client: checked, copied */

static int
c1_request_id(cJSON *item, const char *code, const char *param, char *out,
    size_t *len, c1_error_t *err)
{
    size_t  n;

    if (item == NULL || cJSON_IsNull(item)) {
        return C1_OK;
    }

    if (!cJSON_IsString(item)
        || (n = strlen(item->valuestring)) == 0
        || !c1_thread_id_valid((unsigned char *) item->valuestring, n))
    {
        C1_BAD_REQUEST(err, code, param, "\"%s\" must be 1 to 128 "
                       "printable ASCII characters", param);
        return C1_ERROR;
    }

    memcpy(out, item->valuestring, n + 1);
    *len = n;

    return C1_OK;
}


/* AG-UI's fields of OpenUI's body, which C1 does not take */

static int
c1_request_agui(const char *name, cJSON *item)
{
    static const char  *fields[] = {
        "threadId", "runId", "context", "forwardedProps", "state", NULL
    };

    const char  **f;

    for (f = fields; *f; f++) {
        if (strcmp(name, *f) == 0) {
            return 1;
        }
    }

    return strcmp(name, "tools") == 0 && cJSON_IsArray(item)
           && item->child == NULL;
}


/*
 * An AG-UI message of OpenUI's in OpenAI's words: toolCalls and toolCallId
 * are tool_calls and tool_call_id (an empty toolCalls goes).
 */

static int
c1_request_agui_message(cJSON *m)
{
    cJSON  *item;

    item = cJSON_GetObjectItemCaseSensitive(m, "toolCalls");

    if (item != NULL) {
        item = cJSON_DetachItemViaPointer(m, item);

        if (cJSON_IsArray(item) && item->child != NULL
            && !cJSON_HasObjectItem(m, "tool_calls"))
        {
            if (!cJSON_AddItemToObject(m, "tool_calls", item)) {
                cJSON_Delete(item);
                return C1_NOMEM;
            }

        } else {
            cJSON_Delete(item);
        }
    }

    item = cJSON_GetObjectItemCaseSensitive(m, "toolCallId");

    if (item != NULL) {
        item = cJSON_DetachItemViaPointer(m, item);

        if (cJSON_IsString(item) && !cJSON_HasObjectItem(m, "tool_call_id")) {
            if (!cJSON_AddItemToObject(m, "tool_call_id", item)) {
                cJSON_Delete(item);
                return C1_NOMEM;
            }

        } else {
            cJSON_Delete(item);
        }
    }

    return C1_OK;
}


static int
c1_prompt_text(cJSON *prompt, cJSON **text, c1_error_t *err)
{
    cJSON  *content, *role;

    if (cJSON_IsString(prompt)) {
        *text = prompt;
        return C1_OK;
    }

    if (!cJSON_IsObject(prompt)) {
        C1_BAD_REQUEST(err, "invalid_prompt", "prompt",
                       "\"prompt\" must be a string or a message object");
        return C1_ERROR;
    }

    /* <C1Chat>'s message: {"id", "role": "user", "content"} */

    role = cJSON_GetObjectItemCaseSensitive(prompt, "role");

    if (role != NULL
        && !(cJSON_IsString(role) && strcmp(role->valuestring, "user") == 0))
    {
        C1_BAD_REQUEST(err, "invalid_prompt", "prompt.role",
                       "the prompt's role must be \"user\"");
        return C1_ERROR;
    }

    content = cJSON_GetObjectItemCaseSensitive(prompt, "content");

    if (!cJSON_IsString(content)) {
        C1_BAD_REQUEST(err, "invalid_prompt", "prompt.content",
                       "the prompt's \"content\" must be a string");
        return C1_ERROR;
    }

    *text = content;

    return C1_OK;
}


static int
c1_check_messages(cJSON *messages, c1_error_t *err)
{
    int     i;
    cJSON  *m, *role, *content;

    if (!cJSON_IsArray(messages) || messages->child == NULL) {
        C1_BAD_REQUEST(err, "invalid_messages", "messages",
                       "\"messages\" must be a non-empty array of "
                       "{\"role\", \"content\"} objects");
        return C1_ERROR;
    }

    i = 0;

    cJSON_ArrayForEach(m, messages) {

        if (!cJSON_IsObject(m)) {
            C1_BAD_REQUEST(err, "invalid_messages", "messages",
                           "messages[%d] is not an object", i);
            return C1_ERROR;
        }

        role = cJSON_GetObjectItemCaseSensitive(m, "role");

        if (!cJSON_IsString(role) || role->valuestring[0] == '\0') {
            C1_BAD_REQUEST(err, "invalid_messages", "messages",
                           "messages[%d] has no \"role\" string", i);
            return C1_ERROR;
        }

        content = cJSON_GetObjectItemCaseSensitive(m, "content");

        if (content == NULL) {

            /* an assistant message may carry tool calls only */

            if (strcmp(role->valuestring, "assistant") != 0) {
                C1_BAD_REQUEST(err, "invalid_messages", "messages",
                               "messages[%d] has no \"content\"", i);
                return C1_ERROR;
            }

        } else if (!cJSON_IsString(content) && !cJSON_IsArray(content)
                   && !cJSON_IsNull(content))
        {
            C1_BAD_REQUEST(err, "invalid_messages", "messages",
                           "messages[%d].content must be a string or an "
                           "array", i);
            return C1_ERROR;
        }

        i++;
    }

    return C1_OK;
}


static cJSON *
c1_message(const char *role, cJSON *content)
{
    cJSON  *m;

    m = cJSON_CreateObject();

    if (m == NULL || cJSON_AddStringToObject(m, "role", role) == NULL) {
        cJSON_Delete(m);
        cJSON_Delete(content);
        return NULL;
    }

    cJSON_AddItemToObject(m, "content", content);

    return m;
}


/* the configured sampling settings fill in what the client left out */

static int
c1_add_settings(cJSON *req, const c1_settings_t *s)
{
    unsigned  i;
    cJSON    *stop, *item;

    if (s->has_temperature && !cJSON_HasObjectItem(req, "temperature")
        && cJSON_AddNumberToObject(req, "temperature", s->temperature) == NULL)
    {
        return C1_NOMEM;
    }

    if (s->has_max_tokens && !cJSON_HasObjectItem(req, "max_tokens")
        && !cJSON_HasObjectItem(req, "max_completion_tokens")
        && cJSON_AddNumberToObject(req, "max_tokens", (double) s->max_tokens)
           == NULL)
    {
        return C1_NOMEM;
    }

    if (s->has_top_p && !cJSON_HasObjectItem(req, "top_p")
        && cJSON_AddNumberToObject(req, "top_p", s->top_p) == NULL)
    {
        return C1_NOMEM;
    }

    if (s->nstop && !cJSON_HasObjectItem(req, "stop")) {
        stop = cJSON_AddArrayToObject(req, "stop");
        if (stop == NULL) {
            return C1_NOMEM;
        }

        for (i = 0; i < s->nstop; i++) {
            item = c1_json_string(&s->stop[i]);
            if (item == NULL) {
                return C1_NOMEM;
            }

            cJSON_AddItemToArray(stop, item);
        }
    }

    return C1_OK;
}

