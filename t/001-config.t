# nginx -t catches configuration mistakes with a clear message.

use Test::Nginx::Socket 'no_plan';

no_long_string();
run_tests();

__DATA__

=== TEST 1: a c1_pass location with no model in effect
--- config
    location = /chat { c1_pass /_c1; }
--- must_die
--- error_log eval
qr/\[emerg\] .*"c1_pass" in .*nginx\.conf:\d+ has no "c1_model" in effect/



=== TEST 2: an empty model
--- config
    c1_model "";
    location = /chat { c1_pass /_c1; }
--- must_die
--- error_log
"c1_model" must not be empty



=== TEST 3: c1_pass needs a location URI
--- config
    c1_model m;
    location = /chat { c1_pass api.thesys.dev; }
--- must_die
--- error_log
"c1_pass" takes the URI of a location, starting with "/", not "api.thesys.dev"



=== TEST 4: c1_pass is only for locations
--- config
    c1_model m;
    c1_pass /_c1;
--- must_die
--- error_log
"c1_pass" directive is not allowed here



=== TEST 5: a temperature out of range
--- config
    c1_model m;
    c1_temperature 2.5;
--- must_die
--- error_log
"c1_temperature" takes a number from 0.0 to 2.0, not "2.5"



=== TEST 6: a temperature that is not a number
--- config
    c1_model m;
    c1_temperature warm;
--- must_die
--- error_log
"c1_temperature" takes a number from 0.0 to 2.0, not "warm"



=== TEST 7: top_p out of range
--- config
    c1_model m;
    c1_top_p 1.5;
--- must_die
--- error_log
"c1_top_p" takes a number from 0.0 to 1.0, not "1.5"



=== TEST 8: max_tokens not a positive number
--- config
    c1_model m;
    c1_max_tokens 0;
--- must_die
--- error_log
"c1_max_tokens" takes a whole number from 1 to 10000000, not "0"



=== TEST 9: max_tokens not a number
--- config
    c1_model m;
    c1_max_tokens lots;
--- must_die
--- error_log
"c1_max_tokens" takes a whole number from 1 to 10000000, not "lots"



=== TEST 10: more than four stop sequences
--- config
    c1_model m;
    c1_stop a b c d e;
--- must_die
--- error_log
"c1_stop" takes at most 4 sequences



=== TEST 11: c1_stream takes on or off
--- config
    c1_model m;
    c1_stream yes;
--- must_die
--- error_log
invalid value "yes" in "c1_stream" directive, it must be "on" or "off"



=== TEST 12: a bad c1_max_response_size
--- config
    c1_model m;
    c1_max_response_size big;
--- must_die
--- error_log
"c1_max_response_size" directive invalid value



=== TEST 13: a duplicate directive
--- config
    c1_model m;
    c1_model n;
--- must_die
--- error_log
"c1_model" directive is duplicate



=== TEST 14: a model set at http level serves every c1_pass location below it
--- http_config
    c1_model c1/http/model;
--- config
    location = /a { c1_pass /_c1; }
    location /b {
        location /b/c { c1_pass /_c1; }
    }
    location = /_c1 { internal; return 200 '{"choices":[{"message":{"content":"ok"}}]}'; }
--- request
POST /b/c
{"prompt": "x"}
--- more_headers
Content-Type: application/json
--- response_body chomp
ok
