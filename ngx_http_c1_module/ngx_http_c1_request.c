
/*
 * ngx_http_c1_module: turning what a client sent into the body of a C1
 * chat-completions call.
 *
 * Three shapes are accepted: a text/plain body (the whole body is the
 * prompt), {"prompt": "text"} or {"prompt": {"role", "content", "id"}}
 * (the standalone pattern and <C1Chat>'s message), and the OpenAI shape
 * {"messages": [...], ...} (a key-hiding gateway).  The model is always
 * the configured one and the configured system prompt always goes first.
 */


#include <stdlib.h>
#include <string.h>

#include "ngx_http_c1_json.h"


#define C1_BAD_REQUEST(err, code, param, ...)                                 \
    c1_error_set(err, 400, "invalid_request_error", code, param, __VA_ARGS__)


static int c1_blank(const char *s);
static int c1_check_messages(cJSON *messages, c1_error_t *err);
static cJSON *c1_message(const char *role, cJSON *content);
static int c1_add_settings(cJSON *req, const c1_settings_t *s);
static int c1_prompt_text(cJSON *prompt, cJSON **text, c1_error_t *err);


int
c1_request_build(const unsigned char *in, size_t len, c1_body_type_e type,
    const c1_settings_t *s, c1_request_t *out, c1_error_t *err)
{
    int          rc;
    cJSON       *root, *req, *msgs, *item, *next, *prompt, *messages, *stream;
    cJSON       *text;
    const char  *problem;

    root = NULL;
    req = NULL;
    text = NULL;
    messages = NULL;

    out->body = NULL;
    out->len = 0;
    out->stream = s->stream;

    if (type == C1_BODY_TEXT) {

        if (len == 0) {
            C1_BAD_REQUEST(err, "empty_prompt", "prompt", "the prompt is empty");
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

        text = c1_json_string(&(c1_str_t) { in, len });
        if (text == NULL) {
            return C1_NOMEM;
        }

        if (c1_blank(text->valuestring)) {
            cJSON_Delete(text);
            C1_BAD_REQUEST(err, "empty_prompt", "prompt", "the prompt is empty");
            return C1_ERROR;
        }

        out->mode = C1_MODE_PROMPT;
        goto build;
    }

    root = c1_json_parse(in, len, &problem);
    if (root == NULL) {
        C1_BAD_REQUEST(err, "invalid_json", NULL, "the request body %s",
                       problem);
        return C1_ERROR;
    }

    if (!cJSON_IsObject(root)) {
        C1_BAD_REQUEST(err, "invalid_body", NULL,
                       "the request body must be a JSON object");
        rc = C1_ERROR;
        goto failed;
    }

    stream = cJSON_GetObjectItemCaseSensitive(root, "stream");

    if (stream != NULL && !cJSON_IsNull(stream)) {
        if (!cJSON_IsBool(stream)) {
            C1_BAD_REQUEST(err, "invalid_stream", "stream",
                           "\"stream\" must be true or false");
            rc = C1_ERROR;
            goto failed;
        }

        out->stream = cJSON_IsTrue(stream);
    }

    prompt = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    messages = cJSON_GetObjectItemCaseSensitive(root, "messages");

    if (prompt != NULL && messages != NULL) {
        C1_BAD_REQUEST(err, "invalid_body", NULL,
                       "give either \"prompt\" or \"messages\", not both");
        rc = C1_ERROR;
        goto failed;
    }

    if (prompt != NULL) {
        rc = c1_prompt_text(prompt, &text, err);
        if (rc != C1_OK) {
            goto failed;
        }

        out->mode = C1_MODE_PROMPT;
        goto build;
    }

    if (messages == NULL) {
        C1_BAD_REQUEST(err, "missing_prompt", "prompt",
                       "the request needs a \"prompt\" (or OpenAI-style "
                       "\"messages\")");
        rc = C1_ERROR;
        goto failed;
    }

    rc = c1_check_messages(messages, err);
    if (rc != C1_OK) {
        goto failed;
    }

    out->mode = C1_MODE_OPENAI;

build:

    rc = C1_NOMEM;

    req = cJSON_CreateObject();
    if (req == NULL) {
        goto failed;
    }

    item = c1_json_string(&s->model);
    if (item == NULL) {
        goto failed;
    }

    cJSON_AddItemToObject(req, "model", item);

    msgs = cJSON_AddArrayToObject(req, "messages");
    if (msgs == NULL) {
        goto failed;
    }

    if (s->system_prompt.len) {
        item = c1_json_string(&s->system_prompt);
        if (item == NULL) {
            goto failed;
        }

        item = c1_message("system", item);
        if (item == NULL) {
            goto failed;
        }

        cJSON_AddItemToArray(msgs, item);
    }

    if (out->mode == C1_MODE_PROMPT) {
        item = c1_message("user", text);
        text = NULL;

        if (item == NULL) {
            goto failed;
        }

        cJSON_AddItemToArray(msgs, item);

    } else {

        /* the client's messages, without the frontend's "id" fields */

        for (item = messages->child; item != NULL; item = next) {
            next = item->next;
            cJSON_DeleteItemFromObjectCaseSensitive(item, "id");
            cJSON_AddItemToArray(msgs,
                                 cJSON_DetachItemViaPointer(messages, item));
        }

        /* every other field of the client's passes through */

        for (item = root->child; item != NULL; item = next) {
            next = item->next;

            if (strcmp(item->string, "model") == 0
                || strcmp(item->string, "messages") == 0
                || strcmp(item->string, "stream") == 0)
            {
                continue;
            }

            cJSON_AddItemToObject(req, item->string,
                                  cJSON_DetachItemViaPointer(root, item));
        }
    }

    if (c1_add_settings(req, s) != C1_OK) {
        goto failed;
    }

    if (out->stream && cJSON_AddTrueToObject(req, "stream") == NULL) {
        goto failed;
    }

    out->body = cJSON_PrintUnformatted(req);
    if (out->body == NULL) {
        goto failed;
    }

    out->len = strlen(out->body);
    rc = C1_OK;

failed:

    cJSON_Delete(text);
    cJSON_Delete(req);
    cJSON_Delete(root);

    return rc;
}


static int
c1_prompt_text(cJSON *prompt, cJSON **text, c1_error_t *err)
{
    cJSON  *content, *role;

    if (cJSON_IsString(prompt)) {
        content = prompt;

    } else if (cJSON_IsObject(prompt)) {

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

    } else {
        C1_BAD_REQUEST(err, "invalid_prompt", "prompt",
                       "\"prompt\" must be a string or a message object");
        return C1_ERROR;
    }

    if (c1_blank(content->valuestring)) {
        C1_BAD_REQUEST(err, "empty_prompt", "prompt", "the prompt is empty");
        return C1_ERROR;
    }

    *text = cJSON_CreateString(content->valuestring);

    return *text ? C1_OK : C1_NOMEM;
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


static int
c1_blank(const char *s)
{
    for ( /* void */ ; *s; s++) {
        if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n') {
            return 0;
        }
    }

    return 1;
}
