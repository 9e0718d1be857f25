
/*
 * ngx_http_c1_module: reading what C1 answered: the assistant's content
 * and token usage of a chat.completion, and C1's error answers.
 */


#include <stdlib.h>
#include <string.h>

#include "ngx_http_c1_json.h"
#include "ngx_http_c1_scan.h"


#define C1_BAD_ANSWER(err, ...)                                               \
    c1_error_set(err, 502, "upstream_error", "bad_upstream_answer", NULL,     \
                 __VA_ARGS__)




/*
 * C1's chat.completion: the assistant's content (prompt mode) and the
 * token counts.  Read in one pass by c1_scan(); what it declines is read
 * with cJSON by c1_answer_extract_tree(), to the same result.
 */

int
c1_answer_extract(const unsigned char *in, size_t len, c1_mode_e mode,
    c1_answer_t *out, c1_error_t *err)
{
    char       *content;
    c1_scan_t   s;

    content = NULL;

    if (mode == C1_MODE_PROMPT) {

        /* the content unescaped is never longer than the answer */

        content = malloc(len + 1);
        if (content == NULL) {
            return C1_NOMEM;
        }
    }

    if (c1_scan(in, len, C1_SCAN_MESSAGE, (unsigned char *) content, &s)
        != C1_OK)
    {
        free(content);
        return c1_answer_extract_tree(in, len, mode, out, err);
    }

    out->content = NULL;
    out->content_len = 0;
    out->prompt_tokens = s.prompt_tokens;
    out->completion_tokens = s.completion_tokens;
    out->total_tokens = s.total_tokens;

    if (!s.choice) {
        free(content);
        C1_BAD_ANSWER(err, "C1's answer has no choices");
        return C1_ERROR;
    }

    if (mode == C1_MODE_OPENAI) {
        return C1_OK;
    }

    if (!s.content) {
        free(content);
        C1_BAD_ANSWER(err, "C1's answer has no content");
        return C1_ERROR;
    }

    content[s.content_len] = '\0';

    out->content = content;
    out->content_len = s.content_len;

    return C1_OK;
}


int
c1_answer_extract_tree(const unsigned char *in, size_t len, c1_mode_e mode,
    c1_answer_t *out, c1_error_t *err)
{
    int          rc;
    cJSON       *root, *choices, *choice, *message, *content, *usage;
    const char  *problem;

    out->content = NULL;
    out->content_len = 0;
    out->prompt_tokens = -1;
    out->completion_tokens = -1;
    out->total_tokens = -1;

    root = c1_json_parse(in, len, &problem);
    if (root == NULL) {
        C1_BAD_ANSWER(err, "C1's answer %s", problem);
        return C1_ERROR;
    }

    rc = C1_ERROR;

    if (!cJSON_IsObject(root)) {
        C1_BAD_ANSWER(err, "C1's answer is not a JSON object");
        goto done;
    }

    usage = cJSON_GetObjectItemCaseSensitive(root, "usage");

    if (cJSON_IsObject(usage)) {
        out->prompt_tokens = c1_json_count(usage, "prompt_tokens");
        out->completion_tokens = c1_json_count(usage, "completion_tokens");
        out->total_tokens = c1_json_count(usage, "total_tokens");
    }

    choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
    choice = cJSON_GetArrayItem(choices, 0);

    if (!cJSON_IsArray(choices) || !cJSON_IsObject(choice)) {
        C1_BAD_ANSWER(err, "C1's answer has no choices");
        goto done;
    }

    if (mode == C1_MODE_OPENAI) {
        /* the client gets the chat.completion as it is */
        rc = C1_OK;
        goto done;
    }

    message = cJSON_GetObjectItemCaseSensitive(choice, "message");
    content = cJSON_GetObjectItemCaseSensitive(message, "content");

    if (!cJSON_IsString(content)) {
        C1_BAD_ANSWER(err, "C1's answer has no content");
        goto done;
    }

    out->content_len = strlen(content->valuestring);
    out->content = malloc(out->content_len + 1);

    if (out->content == NULL) {
        rc = C1_NOMEM;
        goto done;
    }

    memcpy(out->content, content->valuestring, out->content_len + 1);

    rc = C1_OK;

done:

    cJSON_Delete(root);

    return rc;
}


/*
 * C1 answered an error status.  Returns C1_OK when its body is already an
 * OpenAI-style error ({"error": {...}}) that the client can have as it is;
 * otherwise fills err with an error of our own for that status.
 */

int
c1_upstream_error(int status, const unsigned char *in, size_t len,
    c1_error_t *err)
{
    cJSON       *root, *e, *msg;
    const char  *type, *problem;

    if (status == 401 || status == 403) {
        type = "authentication_error";

    } else if (status == 429) {
        type = "rate_limit_error";

    } else if (status >= 500) {
        type = "upstream_error";

    } else {
        type = "invalid_request_error";
    }

    root = c1_json_parse(in, len, &problem);

    if (cJSON_IsObject(root)) {
        e = cJSON_GetObjectItemCaseSensitive(root, "error");

        if (cJSON_IsObject(e)) {
            cJSON_Delete(root);
            return C1_OK;
        }

        msg = cJSON_GetObjectItemCaseSensitive(root, "message");

        if (!cJSON_IsString(msg)) {
            msg = cJSON_GetObjectItemCaseSensitive(root, "detail");
        }

        if (!cJSON_IsString(msg)) {
            msg = e;
        }

        if (cJSON_IsString(msg)) {
            c1_error_set(err, status, type, "c1_error", NULL,
                         "C1 answered HTTP %d: %s", status, msg->valuestring);
            cJSON_Delete(root);
            return C1_ERROR;
        }
    }

    cJSON_Delete(root);

    c1_error_set(err, status, type, "c1_error", NULL,
                 "C1 answered HTTP %d", status);

    return C1_ERROR;
}

