// The njs contender (js_content): prompt JSON in, the C1 call as a
// subrequest (r.subrequest) to the internal keepalive proxy location /_c1,
// the assistant's content out. njs 0.7.x cannot relay a subrequest's body
// as it arrives (its reply is only had whole), so a streamed request is
// refused with 501: no streaming contender for njs.

const SYSTEM = "You are a benchmark.";
const MODEL = "c1/bench/model";

function fail(r, status, code, message) {
    r.headersOut['Content-Type'] = 'application/json';
    r.return(status, JSON.stringify({ error: { code: code, message: message } }));
}

async function chat(r) {
    let req;
    try {
        req = JSON.parse(r.requestText);
    } catch (e) {
        return fail(r, 400, 'invalid_json', 'the request body is not JSON');
    }
    if (req === null || typeof req !== 'object' || typeof req.prompt !== 'string') {
        return fail(r, 400, 'missing_prompt', 'the request needs a "prompt" string');
    }
    if (req.stream === true) {
        return fail(r, 501, 'stream_unsupported',
                    'njs 0.7 cannot stream a subrequest\'s answer');
    }

    const body = JSON.stringify({
        model: MODEL,
        messages: [
            { role: 'system', content: SYSTEM },
            { role: 'user', content: req.prompt },
        ],
    });

    let reply;
    try {
        reply = await r.subrequest('/_c1', { method: 'POST', body: body, args: r.variables.args || '' });
    } catch (e) {
        return fail(r, 502, 'upstream_failure', String(e));
    }
    if (reply.status !== 200) {
        return fail(r, 502, 'c1_error', 'C1 answered ' + reply.status);
    }

    let content;
    try {
        content = JSON.parse(reply.responseText).choices[0].message.content;
    } catch (e) {
        content = undefined;
    }
    if (typeof content !== 'string') {
        return fail(r, 502, 'bad_answer', 'no content in C1\'s answer');
    }
    r.headersOut['Content-Type'] = 'text/plain; charset=utf-8';
    r.return(200, content);
}

export default { chat };
