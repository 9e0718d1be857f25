package Test::Nginx::Socket;

# A small stand-in for Test::Nginx::Socket from openresty's Test-Nginx (CPAN).
#
# It implements the subset of the data-driven test format used by this
# project's t/*.t files (config, http_config, main_config, request,
# raw_request, pipelined_requests, more_headers, error_code, response_body*,
# response_headers*, error_log, no_error_log, shutdown_error_log, must_die,
# timeout, abort, wait, user_files, skip_nginx, ...) with the same semantics,
# nginx.conf layout and TEST_NGINX_* environment variables as the real one.
# Sections of the real one that are not implemented here are reported with
# a warning, never silently passed. Also not supported: TEST_NGINX_USE_HUP
# (nginx is restarted instead), no_nginx_manager, TEST_NGINX_RAND_PORT_N,
# request packet arrays (use raw_request eval), HTTP/2/3, stap, check-leak
# and benchmark modes.
#
# The real Test::Nginx is always preferred: this copy is only put on @INC
# (PERL5LIB=t/compat/lib) when `perl -MTest::Nginx::Socket -e1` fails.

use strict;
use warnings;

use Test::Base -base;
use File::Path qw(make_path remove_tree);
use File::Spec ();
use HTTP::Response ();
use IO::Select ();
use IO::Socket::INET ();
use List::Util qw(shuffle min);
use POSIX qw(SIGQUIT SIGKILL SIGTERM WNOHANG EAGAIN);
use Scalar::Util qw(looks_like_number);
use Test::LongString qw(is_string);
use Time::HiRes qw(sleep);

our $VERSION = '0.33-compat';

our @EXPORT = qw(
    env_to_nginx is_str plan run_tests run_test repeat_each config_preamble
    worker_connections master_process_enabled no_long_string workers
    master_on master_off log_level no_shuffle no_root_location use_hup
    server_name server_addr server_root html_dir server_port
    server_port_for_client timeout no_nginx_manager check_accum_error_log
    add_block_preprocessor bail_out add_test_cleanup_handler
    add_cleanup_handler add_response_body_check
);

# ---- settings: same env vars and defaults as Test::Nginx::Util ------------

our $NginxBinary          = $ENV{TEST_NGINX_BINARY} || 'nginx';
our $LoadModules          = $ENV{TEST_NGINX_LOAD_MODULES};
our $ServerAddr           = '127.0.0.1';
our $ServerName           = 'localhost';
our $ServerPort           = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || 1984;
our $ServerPortForClient  = $ENV{TEST_NGINX_CLIENT_PORT} || $ServerPort;
our $LogLevel             = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $MasterProcessEnabled = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
our $NoShuffle            = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $CheckAccumErrLog     = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG};
our $Timeout              = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $TestNginxSleep       = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $UseValgrind          = $ENV{TEST_NGINX_USE_VALGRIND};
our $WorkerUser           = $ENV{TEST_NGINX_WORKER_USER};
die "Bad value in the env TEST_NGINX_WORKER_USER: $WorkerUser\n"
    if defined $WorkerUser && $WorkerUser !~ /^\w[-\w]+(?:\s+\w[-\w]+)?$/;
our ($Workers, $WorkerConnections, $RepeatEach, $NoRootLocation) = (1, 64, 1, 0);
our ($NoLongString, $ConfigPreamble, $DaemonEnabled) = (undef, '', 'on');

our (@EnvToNginx, @BlockPreprocessors, @CleanupHandlers, @TestCleanupHandlers,
     @ResponseBodyChecks);
our ($NginxVersion, $NginxV, $PrevConfig, $PrevBlock, $ChildPid, $InSubprocess,
     $ErrLogFilePos);

our $ServRoot = $ENV{TEST_NGINX_SERVROOT} || File::Spec->rel2abs('t/servroot');
$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;
for my $v (grep { $ENV{$_} } qw(TEST_NGINX_USE_HUP TEST_NGINX_NO_NGINX_MANAGER)) {
    warn "$v is not supported by the compat Test::Nginx::Socket, ignored\n";
}
our $LogDir     = "$ServRoot/logs";
our $ErrLogFile = "$LogDir/error.log";
our $PidFile    = "$LogDir/nginx.pid";
our $HtmlDir    = "$ServRoot/html";
our $ConfDir    = "$ServRoot/conf";
our $ConfFile   = "$ConfDir/nginx.conf";

# sections the real one interprets but this one does not (others, like the
# ones a test's block preprocessor consumes, are simply ignored by both)
my %Unsupported = map { $_ => 1 } qw(
    access_log no_access_log grep_error_log grep_error_log_out error_log_file
    charset curl curl_error curl_options curl_protocol http09 http2 http3
    no_http2 no_http3 quic_max_idle_timeout init post_setup_server_root
    raw_request_middle_delay shutdown server_addr_for_client request_eval
    response_body_eval response_body_filters response_body_json_sort
    write_resp_body_file reload_fails no_mockeagain skip_eval skip_nginx2
    skip_openssl skip_slave todo todo_nginx stap stap_out stap_out_like
    stap_out_unlike tcp_listen tcp_no_close tcp_query tcp_query_auto_timeout
    tcp_query_len tcp_reply tcp_reply_delay tcp_shutdown tcp_shutdown_delay
    udp_listen udp_query udp_reply udp_reply_delay
);

# ---- exported configuration functions -------------------------------------

sub _accessor { my $ref = shift; $$ref = shift if @_; return $$ref }

sub repeat_each (@)              { _accessor(\$RepeatEach, @_) }
sub workers (@)                  { _accessor(\$Workers, @_) }
sub worker_connections (@)       { _accessor(\$WorkerConnections, @_) }
sub log_level (@)                { _accessor(\$LogLevel, @_) }
sub server_name (@)              { _accessor(\$ServerName, @_) }
sub server_addr (@)              { _accessor(\$ServerAddr, @_) }
sub server_port (@)              { _accessor(\$ServerPort, @_) }
sub server_port_for_client (@)   { _accessor(\$ServerPortForClient, @_) }
sub timeout (@)                  { _accessor(\$Timeout, @_) }
sub config_preamble ($)          { $ConfigPreamble = shift }
sub no_long_string ()            { $NoLongString = 1 }
sub no_shuffle ()                { $NoShuffle = 1 }
sub no_root_location ()          { $NoRootLocation = 1 }
sub no_nginx_manager ()          { warn "no_nginx_manager: not supported, ignored\n" }
sub use_hup ()                   { warn "use_hup: not supported, ignored\n" }
sub check_accum_error_log ()     { $CheckAccumErrLog = 1 }
sub master_on ()                 { $MasterProcessEnabled = 'on' }
sub master_off ()                { $MasterProcessEnabled = 'off' }
sub html_dir ()                  { $HtmlDir }
sub server_root ()               { $ServRoot }
sub add_block_preprocessor (&)   { unshift @BlockPreprocessors, shift }
sub add_cleanup_handler ($)      { unshift @CleanupHandlers, shift }
sub add_test_cleanup_handler ($) { unshift @TestCleanupHandlers, shift }
sub add_response_body_check ($)  { push @ResponseBodyChecks, shift }

sub master_process_enabled (@) {
    $MasterProcessEnabled = shift() ? 'on' : 'off' if @_;
    return $MasterProcessEnabled;
}

sub env_to_nginx (@) {
    for my $v (@_) {
        croak "env_to_nginx: bad argument value: $v\n" if $v !~ /^[A-Za-z_]/ || $v =~ /\n/;
        push @EnvToNginx, $v;
    }
}

sub is_str (@) {
    my ($got, $expected, $desc) = @_;
    return like($got, $expected, $desc) if ref $expected eq 'Regexp';
    return $NoLongString ? is($got, $expected, $desc) : is_string($got, $expected, $desc);
}

sub bail_out (@) {
    cleanup();
    Test::More::BAIL_OUT(@_);
}

sub cleanup () {
    $_->() for @CleanupHandlers;
    if (defined $ChildPid) {
        kill_process($ChildPid, 'cleanup');
        undef $ChildPid;
    }
}

# ---- helpers ---------------------------------------------------------------

sub parse_time ($) {    # "1.5", "2s", "50ms" => seconds
    my $tm = shift;
    return $tm if !defined $tm;
    return $tm / 1000 if $tm =~ s/([^_a-zA-Z])ms$/$1/;
    $tm =~ s/([^_a-zA-Z])s$/$1/;
    return $tm;
}

sub fmt_str ($) {
    my $s = shift;
    chomp $s;
    $s =~ s/"/\\"/g;
    $s =~ s/\r/\\r/g;
    $s =~ s/\n/\\n/g;
    return $s;
}

# Substitutes $TEST_NGINX_* from %ENV (not: the real one's TEST_NGINX_RAND_PORT_N).
sub expand_env ($$) {
    my ($text, $name) = @_;
    return $text if !defined $text || ref $text;
    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        $ENV{$1} // bail_out("$name - No environment $1 defined.\n")
    }eg;
    return $text;
}

sub get_canon_version (@) { sprintf "%d.%03d%03d", @_[0 .. 2] }

sub get_nginx_version () {    # also keeps the `nginx -V` output in $NginxV
    $NginxV = `$NginxBinary -V 2>&1`;
    bail_out("Failed to get the version of the Nginx in PATH: " . ($NginxV // ''))
        if !defined $NginxV || $? != 0;
    return get_canon_version($1, $2, $3)
        if $NginxV =~ m{(?:nginx|openresty)[^/]*/(\d+)\.(\d+)\.(\d+)}s
        || $NginxV =~ m{\w+/(\d+)\.(\d+)\.(\d+)}s;
    bail_out("Failed to parse the output of \"nginx -V\": $NginxV\n");
}

# ---- stopping nginx --------------------------------------------------------

sub read_pid () {
    open my $in, '<', $PidFile or return undef;
    my $pid = <$in>;
    close $in;
    chomp $pid if defined $pid;
    return $pid;
}

sub is_running ($) {
    my $pid = shift;
    return 0 if !$pid || !kill(0, $pid);
    # an unreaped zombie (we may not be its parent) is not running either
    open my $fh, '<', "/proc/$pid/stat" or return 1;
    return (<$fh> // '') =~ /^\d+ \(.*\) Z /s ? 0 : 1;
}

sub kill_process ($$;$) {
    my ($pid, $name, $wait) = @_;
    kill($ENV{TEST_NGINX_FAST_SHUTDOWN} ? SIGTERM : SIGQUIT, $pid);
    for (my $left = $wait // $Timeout; $left > 0 && is_running($pid); $left -= 0.05) {
        waitpid($pid, WNOHANG);
        sleep 0.05;
    }
    if (is_running($pid)) {
        warn "$name - timeout when waiting for the process $pid to exit\n";
        kill(SIGKILL, getpgrp($pid) == $pid ? -$pid : $pid);
        sleep 0.05;
    }
    waitpid($pid, WNOHANG);
}

sub stop_nginx ($) {
    my $name = shift;
    my $wait = defined $ChildPid ? 30 : $Timeout;    # valgrind's leak report is slow
    my $pid = read_pid();
    if (is_running($pid)) {
        kill_process($pid, $name, $wait);
    } elsif (-f $PidFile) {
        unlink $PidFile;
    }
    if (defined $ChildPid) {    # valgrind mode: nginx is our child process
        kill_process($ChildPid, $name, $wait) if is_running($ChildPid);
        waitpid($ChildPid, 0);
        undef $ChildPid;
    }
}

# ---- server root, user files, nginx.conf -----------------------------------

sub setup_server_root () {
    if (-d $ServRoot) {
        # only remove what we create, in case TEST_NGINX_SERVROOT is misused
        remove_tree($ConfDir, glob("$ServRoot/*_cache"), glob("$ServRoot/*_temp"),
                    "$ServRoot/cache", $HtmlDir, $LogDir);
        rmdir $ServRoot or bail_out("Can't remove $ServRoot (not empty?): $!");
    }
    for my $dir ($ServRoot, $LogDir, $HtmlDir, $ConfDir) {
        -d $dir or mkdir $dir or bail_out("Failed to do mkdir $dir\n");
    }
    open my $out, '>', "$HtmlDir/index.html"
        or bail_out("Can't open $HtmlDir/index.html for writing: $!\n");
    print $out '<html><head><title>It works!</title></head><body>It works!</body></html>';
    close $out;
}

# ">>> name [touch -t date]\nbody..." or eval [[name, body, date], ...]
sub write_user_files ($) {
    my $block = shift;
    my $name = $block->name;
    my $files = $block->user_files or return;
    if (!ref $files) {
        my (@list, $cur);
        for my $line (split /^/, $files) {
            if ($line =~ />>> (\S+)(?:\s+(.+))?/) {
                push @list, $cur = [$1, undef, $2];
            } elsif ($cur) {
                $cur->[1] .= $line;
            }
        }
        $files = \@list;
    } elsif (ref $files ne 'ARRAY') {
        bail_out("$name - wrong value type: ", ref $files, ", only scalar or ARRAY are accepted");
    }
    for my $file (@$files) {
        my ($fname, $body, $date) = @$file;
        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";
        if ($path =~ m{(.*)/} && !-d $1) {
            make_path($1) or bail_out("$name - Cannot create directory ", $1);
        }
        open my $out, '>', $path or bail_out("$name - Cannot open $path for writing: $!\n");
        binmode $out;
        print $out expand_env($body // '', $name);
        close $out;
        if ($date) {
            my $cmd = "TZ=GMT touch -t '$date' $HtmlDir/$fname";
            system($cmd) == 0 or bail_out("Failed to run shell command: $cmd\n");
        }
    }
}

sub write_config_file ($$) {
    my ($block, $config) = @_;
    my $name = $block->name;
    my $http_config = expand_env($block->http_config // '', $name);
    my $main_config = $block->main_config // '';
    my $post_main_config = expand_env($block->post_main_config // '', $name);
    my $server_name = $block->server_name // $ServerName;
    $config //= '';

    if ($LoadModules) {
        $main_config = join ' ', (map { "load_module $_;" } grep { $_ } split /\s+/, $LoadModules),
                            $main_config;
    }
    $main_config = expand_env($main_config, $name);

    my @temp;
    for my $t (qw(client_body proxy fastcgi scgi uwsgi)) {
        next if $t =~ /^(?:fastcgi|scgi|uwsgi)$/ && $NginxV =~ /--without-http_${t}_module/;
        next if $t =~ /^(?:client_body|proxy)$/ && $http_config =~ /\b${t}_temp_path\b/;
        push @temp, "${t}_temp_path $ServRoot/${t}_temp;";
    }
    my $env = join '', map { "env $_;\n" } qw(MOCKEAGAIN_VERBOSE MOCKEAGAIN
        MOCKEAGAIN_WRITE_TIMEOUT_PATTERN LD_PRELOAD LD_LIBRARY_PATH
        DYLD_INSERT_LIBRARIES DYLD_FORCE_FLAT_NAMESPACE),
        map { /\s/ ? "'$_'" : $_ } @EnvToNginx;
    my $root_location = $NoRootLocation ? '' : <<_EOC_;
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_

    # keep the real one's line layout: error messages and Lua chunk names
    # (e.g. "content_by_lua(nginx.conf:40)") contain nginx.conf line numbers
    open my $out, '>', $ConfFile or bail_out("Can't open $ConfFile for writing: $!\n");
    print $out <<_EOC_;
worker_processes  $Workers;
daemon $DaemonEnabled;
master_process $MasterProcessEnabled;
error_log $ErrLogFile $LogLevel;
pid       $PidFile;
$env#env LUA_PATH;
#env LUA_CPATH;

$main_config

http {
    access_log $LogDir/access.log; @temp
    #access_log off;

    default_type text/plain;
    keepalive_timeout  68000ms;

$http_config
    server {
        listen          $ServerPort;
        #placeholder
        server_name     '$server_name';
        
        client_max_body_size 30M;
        #client_body_buffer_size 4k;

        # Begin preamble config...
$ConfigPreamble
        # End preamble config...

        # Begin test case config...
$config
        # End test case config.

$root_location    }
}

$post_main_config

#timer_resolution 100ms;

events {
    accept_mutex off;

    worker_connections  $WorkerConnections;
}
env ASAN_OPTIONS;
env MOCKNOEAGAIN_VERBOSE;
env MOCKNOEAGAIN;
_EOC_
    if (defined $WorkerUser) {
        print $out "user $WorkerUser;\n";
    } elsif ($> == 0) {    # being root
        print $out "user root;\n";
    }
    close $out;
}

# ---- starting nginx --------------------------------------------------------

# Returns true when the block's requests are to be sent.
sub start_nginx ($$) {
    my ($block, $must_die) = @_;
    my $name = $block->name;
    my $e = $NginxVersion >= 1.019005 ? "-e $ErrLogFile " : '';  # -e: nginx >= 1.19.5
    my $cmd = "$NginxBinary $e-p $ServRoot/ -c $ConfFile > /dev/null";
    $cmd .= " 2> /dev/null" if defined $block->suppress_stderr;

    if (defined $must_die) {
        $ErrLogFilePos = 0;
        for my $i (0 .. $RepeatEach - 1) {
            system($cmd);
            my $status = $?;
            if ($status == -1) {
                fail("$name - failed to execute the nginx command line");
            } elsif ($status & 128) {
                fail("$name - nginx core dumped");
            } elsif (looks_like_number($must_die)) {
                is($must_die, $status >> 8, "$name - die with the expected exit code");
            } else {
                isnt($status, 0, "$name - die as expected");
            }
            check_error_log($block, $i);
            if ($status == 0) {
                warn "WARNING: $name - nginx must die but it does not; killing it (req $i)";
                for (1 .. 15) { last if -f $PidFile; sleep $TestNginxSleep }
                my $pid = read_pid();
                kill_process($pid, $name) if $pid;
            }
        }
        return 0;
    }

    if ($UseValgrind) {    # nginx runs in the foreground (daemon off) as our child
        my $opts = $UseValgrind !~ /^\d+$/ ? "-q $UseValgrind"
            : "--num-callers=100 -q --tool=memcheck --leak-check=full --keep-debuginfo=yes"
              . " --show-possibly-lost=no --gen-suppressions=all"
              . (-f 'valgrind.suppress' ? " --suppressions=valgrind.suppress" : '');
        warn "$name\n";
        my $pid = fork() // bail_out("$name - fork() failed: $!");
        if ($pid == 0) {
            setpgrp;
            $InSubprocess = 1;
            Test::More->builder->no_ending(1);
            exec("exec valgrind $opts $cmd") or POSIX::_exit(1);
        }
        $ChildPid = $pid;
        sleep $TestNginxSleep;
        return 1;    # send_request retries connecting until nginx listens
    }

    my $waited = 0;
    for (my $i = 1; system($cmd) != 0; $i++) {
        bail_out("$name - Cannot start nginx using command \"$cmd\" (status code $?).")
            if $waited >= 10;
        my $delay = min(0.1 * $i, 1);
        sleep $delay;
        $waited += $delay;
    }
    sleep $TestNginxSleep;
    return 1;
}

# ---- running the blocks ----------------------------------------------------

sub run_tests () {
    srand($$ + Time::HiRes::time() * 1000000);
    $NginxVersion = get_nginx_version();
    $ENV{TEST_NGINX_SERVER_PORT} //= $ServerPort;

    for my $block ($NoShuffle ? blocks() : shuffle blocks()) {
        $_->($block) for @BlockPreprocessors;
        $block->set_value('name', "$0 " . $block->name);
        run_test($block);
        $_->($block) for @TestCleanupHandlers;
        $PrevBlock = $block;
    }
    cleanup();
}

sub run_test ($) {
    my $block = shift;
    return if defined $block->SKIP;
    my $name = $block->name;

    my @unknown = grep { $Unsupported{$_} } @{ $block->{_section_order}[0] || [] };
    warn "WARNING: $name - section(s) not supported by the compat "
        . "Test::Nginx::Socket (t/compat/lib), ignored: @unknown\n" if @unknown;

    my $config = expand_env(scalar $block->config, $name);
    my $must_die = $block->must_die;
    my $block_log_level = $block->log_level;
    local $LogLevel = $block_log_level || $LogLevel;
    local $UseValgrind = defined $must_die ? undef : $UseValgrind;
    local $DaemonEnabled = $UseValgrind ? 'off' : 'on';

    my ($should_skip, $tests_to_skip, $skip_reason);
    if (defined(my $spec = $block->skip_nginx)) {
        $spec =~ /^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)(?:\s*:\s*(.*))?\s*$/
            or bail_out("$name - Invalid --- skip_nginx spec: $spec");
        ($tests_to_skip, $skip_reason) = ($1, $6 || "nginx version $2 $3.$4.$5");
        $should_skip = eval "$NginxVersion $2 " . get_canon_version($3, $4, $5);
    }

    if (!defined $config) {    # then the previous block's nginx keeps running
        bail_out("$name - No '--- config' section specified and could not get previous one.")
            if !defined $PrevConfig;
    } elsif (!$should_skip) {
        $PrevConfig = $config;
        stop_nginx($name);
        check_prev_block_shutdown_error_log();
        setup_server_root();
        write_user_files($block);
        write_config_file($block, $config);
        return if !start_nginx($block, $must_die);
    }

    $ErrLogFilePos = 0;
    for my $i (0 .. $RepeatEach - 1) {
        write_user_files($block) if $i > 0;
        if ($should_skip && defined $tests_to_skip) {
            SKIP: { skip("$name - $skip_reason", $tests_to_skip) }
        } else {
            run_test_helper($block, $i);
        }
    }
    stop_nginx($name) if $UseValgrind;    # so valgrind reports per block
}

# Sends the request(s) of a block and checks the responses and error.log.
sub run_test_helper ($$) {
    my ($block, $rep) = @_;
    my $name = $block->name;
    my $reqs = get_requests($block);
    my $timeout = parse_time(scalar $block->timeout) // $Timeout;
    my $pipelined = $block->pipelined_requests;
    my $count = $pipelined ? scalar @$pipelined : 1;    # responses per connection
    my $need_array = $pipelined ? 1 : @$reqs > 1;
    my $req_idx = 0;

    for my $k (0 .. $#$reqs) {
        my ($raw, $head_req) = send_request($reqs->[$k], $timeout, $block);
        for my $j (1 .. $count) {
            my ($res, $raw_headers, $left);
            if (!defined $block->ignore_response) {
                ($res, $raw_headers, $left) = parse_response($name, $raw // '', $head_req);
                check_error_code($block, $res, $req_idx, $need_array);
                check_response_headers($block, $res, $raw_headers, $req_idx, $need_array);
                check_response_body($block, $res, $req_idx, $rep, $need_array);
            }
            if ($j < $count) {
                $raw = $left;
            } elsif (defined $left && $left ne '') {
                $left =~ s/([\0-\037\200-\377])/sprintf('\x{%02x}', ord $1)/eg;
                warn "WARNING: $name - unexpected extra bytes after last chunk in ",
                    "response: \"$left\"\n";
            }
            if ($j < $count || $k < $#$reqs) {    # the log is checked after every response
                sleep $block->wait if $block->wait;
                check_error_log($block, $rep);
            }
            $req_idx++;
        }
    }
    sleep $block->wait if $block->wait;
    check_error_log($block, $rep);
}

# ---- building and sending requests -----------------------------------------

sub parse_more_headers ($) {
    my ($out, $chunked) = ('', 0);
    for my $line (split /\n+/, shift) {
        next if $line =~ /^\s*\#/ || $line eq '';
        my ($key, $val) = split /:\s*/, $line, 2;
        $val //= '';
        $chunked = 1 if lc($key) eq 'transfer-encoding' && $val eq 'chunked';
        $out .= "$key: $val\r\n";
    }
    return ($out, $chunked);
}

# "METHOD [URI [VERSION]]\nbody" => HTTP request, like the real one: Host and
# Connection are added unless given, the body is trimmed and Content-Length
# added unless it is chunked or more_headers has a Content-Length.
sub build_request ($$$$) {
    my ($name, $req, $more_headers, $conn) = @_;
    my ($first, $content) = split /(?<=\n)/, $req // '', 2;
    bail_out("$name - Request line should be non-empty") if ($first // '') eq '';
    $first =~ /^\s*(\S+) *(?:(\S+) *)?(?:(\S+) *)?\s*$/
        or bail_out("$name - Request line is not valid. Should be 'meth [url [version]]' "
                    . "but got \"$first\".");
    my ($meth, $url, $ver) = ($1, $2 // '/', $3 // 'HTTP/1.1');
    $content //= '';

    my ($hdrs, $chunked) = parse_more_headers($more_headers);
    my $extra = '';
    $extra .= "Host: $ServerName\r\n" if $hdrs !~ /(?:^|\n)Host:/msi;
    $extra .= "Connection: $conn\r\n" if $hdrs !~ /(?:^|\n)Connection/msi;
    if (!$chunked && $content ne '' && $hdrs !~ /(?:^|\n)Content-Length:/) {
        $content =~ s/^\s+|\s+$//gs;
        $hdrs .= "Content-Length: " . length($content) . "\r\n";
    }
    return "$meth $url $ver\r\n$extra$hdrs\r\n$content";
}

# Returns the list of connections to make; each is a list of packets to send.
sub get_requests ($) {
    my $block = shift;
    my $name = $block->name;

    if (defined(my $raw = $block->raw_request)) {
        return [ ref $raw eq 'ARRAY' ? [@$raw] : [$raw] ];
    }

    my $more = $block->more_headers // '';
    my $headers_for = sub {
        my $i = shift;
        return $more if ref $more ne 'ARRAY';
        return $more->[$i] // bail_out("--- more_headers lacks data for the ${i}th request");
    };

    if (my $reqs = $block->pipelined_requests) {
        bail_out("$name - invalid entries in --- pipelined_requests") if ref $reqs ne 'ARRAY';
        return [[ join '', map {
            build_request($name, expand_env($reqs->[$_], $name), $headers_for->($_),
                          $_ == $#$reqs ? 'close' : 'keep-alive')
        } 0 .. $#$reqs ]];
    }

    my $req = $block->request;
    if (!ref $req) {
        1 while defined $req && $req =~ s/^\s*\#[^\n]+\s+|^\s+//gs;
        return [[ build_request($name, $req, $headers_for->(0), 'close') ]];
    }
    bail_out("$name - invalid ---request : MUST be string or array of requests")
        if ref $req ne 'ARRAY';
    return [ map {
        bail_out("$name - requests as packet arrays are not supported by the compat "
                 . "Test::Nginx::Socket; use --- raw_request eval") if ref $req->[$_];
        [ build_request($name, $req->[$_], $headers_for->($_), 'close') ]
    } 0 .. $#$req ];
}

sub connect_server ($$) {
    my ($name, $timeout) = @_;
    for (my $tries = 1; ; $tries++) {
        my $sock = IO::Socket::INET->new(PeerAddr => $ServerAddr, Proto => 'tcp',
                                          PeerPort => $ServerPortForClient, Timeout => $timeout);
        return $sock if $sock;
        my $err = "Can't connect to $ServerAddr:$ServerPortForClient: $!";
        if ($tries > 50) {
            Test::More->builder->no_ending(1);
            fail("$name - $err (aborted)\n");
            return undef;
        }
        my $wait = min(($TestNginxSleep + $TestNginxSleep * $tries) * $tries / 2, 1);
        warn "$name - $err\n\tRetry connecting after $wait sec\n" if $wait >= 0.6;
        sleep $wait;
    }
}

# Writes the packets, then reads until the server closes the connection or
# nothing happens for $timeout seconds. Returns the raw response.
sub send_request ($$$) {
    my ($packets, $timeout, $block) = @_;
    my $name = $block->name;
    my $head_req = join('', @$packets) =~ /^\s*HEAD\s+/ ? 1 : 0;
    local $SIG{PIPE} = 'IGNORE';
    my $sock = connect_server($name, $timeout) or return (undef, $head_req);
    $sock->blocking(0);

    my @bits = @$packets;
    my ($buf, $off, $resp, $writing) = (shift(@bits) // '', 0, '', 1);
    my $sel = IO::Select->new($sock);

    IO: while (1) {
        my ($r, $w) = IO::Select->select($sel, $writing ? $sel : undef, undef, $timeout);
        if (!$r && !$w) {
            if (!defined $block->abort) {
                Test::More->builder->no_ending(1);
                fail("ERROR: client socket timed out - $name\n");
            }
            last;
        }
        while ($w && @$w && $writing) {
            if ($off < length $buf) {
                my $n = syswrite($sock, $buf, length($buf) - $off, $off);
                if (defined $n) {
                    $off += $n;
                    next;
                }
                last if $! == EAGAIN;
                warn "write failed: $!\n";    # like the real one: give up reading too
                $resp = "write failed: $!" if $resp eq '';
                last IO;
            } elsif (@bits) {
                ($buf, $off) = (shift @bits, 0);
            } else {
                $writing = 0;
            }
        }
        next if !$r || !@$r;
        while (1) {
            my $n = sysread($sock, my $chunk, 4096);
            next IO if !defined $n && $! == EAGAIN;
            warn "WARNING: $name - HTTP response read failure: $!" if !defined $n;
            last IO if !$n;
            $resp .= $chunk;
        }
    }
    close $sock;
    return ($resp, $head_req);
}

# Returns (HTTP::Response, raw header text, bytes left after this response).
sub parse_response ($$$) {
    my ($name, $raw, $head_req) = @_;
    my $raw_headers = $raw =~ /(.*?\r\n)\r\n/s ? $1 : '';
    my $res = HTTP::Response->parse($raw);
    my $code = $res->code;
    if ($code && $code !~ /^\d+$/) {
        undef $code;
        $res->code(undef);
    }
    return ($res, $raw_headers) if $code && ($code == 304 || $code == 101);

    my $bad = sub {
        Test::More->builder->no_ending(1);
        fail("$name - invalid chunked $_[0]");
        return;
    };
    my $enc = $res->header('Transfer-Encoding');
    my $len = $res->header('Content-Length');
    my $body = $res->content // '';
    my $left;
    if (defined $enc && $enc eq 'chunked') {
        my $decoded = '';
        while (1) {
            if ($body =~ /\G0[ \t]*\r\n/gc) {    # last chunk, trailers, CRLF
                1 while $body =~ /\G[^\r\n]+\r\n/gc;
                $body =~ /\G\r\n/gc or return $bad->("data received (expected CRLF).");
                $left = $1 if $body =~ /\G(.+)/gcs;
                last;
            }
            if ($body =~ /\G[ \t]*([A-Fa-f0-9]+)[ \t]*\r\n/gc) {
                my ($size, $pos) = (hex $1, pos $body);
                return $bad->("data received (not enought octets for the data section)")
                    if length($body) - $pos < $size;
                $decoded .= substr($body, $pos, $size);
                pos($body) = $pos + $size;
                $body =~ /\G\r\n/gc or return $bad->("data received (expected CRLF).");
            } elsif ($body =~ /\G(.+)/gcs) {
                return $bad->("body received: $1");
            } else {
                Test::More->builder->no_ending(1);
                fail("$name - no last chunk found - $body");
                return;
            }
        }
        $res->content($decoded);
    } elsif (defined $len && $len =~ /^\d+$/) {
        if (length $body < $len) {
            warn "WARNING: $name - response body truncated: $len expected, but got ",
                length $body, "\n" if !$head_req;
        } elsif (length $body > $len) {
            $left = substr $body, $len;
            $res->content(substr $body, 0, $len);
        }
    }
    return ($res, $raw_headers, $left);
}

# ---- checks ----------------------------------------------------------------

sub get_indexed_value ($$$$) {
    my ($name, $value, $idx, $need_array) = @_;
    if ($need_array) {
        return $value->[$idx] if ref $value eq 'ARRAY';
        bail_out("$name - You asked for many requests, the expected results should be "
                 . "arrays as well.");
    }
    return ref $value eq 'ARRAY' ? $value->[0] : $value;
}

sub check_error_code ($$$$) {
    my ($block, $res, $idx, $need_array) = @_;
    my $name = $block->name;
    my $got = ($res && $res->code) || '';
    if (defined $block->error_code_like) {
        my $pat = get_indexed_value($name, scalar $block->error_code_like, $idx, $need_array);
        return like($got, qr/$pat/sm, "$name - status code ok");
    }
    my $expected = defined $block->error_code
        ? get_indexed_value($name, scalar $block->error_code, $idx, $need_array) : 200;
    is($got, $expected, "$name - status code ok");
}

sub parse_headers ($) {    # "Name: value" lines; "!Name" => undef (absent)
    my %headers;
    for (split /\n/, shift) {
        s/^\s+|\s+$//g;
        if (s/^!\s*//) {
            $headers{$_} = undef;
        } else {
            my ($key, $val) = split /\s*:\s*/, $_, 2;
            $headers{$key} = $val;
        }
    }
    return \%headers;
}

sub check_response_headers ($$$$$) {
    my ($block, $res, $raw_headers, $idx, $need_array) = @_;
    my $name = $block->name;
    for my $type ('like', 'unlike') {
        my $spec = $type eq 'like' ? $block->raw_response_headers_like
                                   : $block->raw_response_headers_unlike;
        next if !defined $spec;
        my $pat = get_indexed_value($name, $spec, $idx, $need_array);
        ($type eq 'like' ? \&like : \&unlike)->($raw_headers // '', qr/$pat/s,
                                                "$name - raw resp headers $type");
    }
    if (defined $block->response_headers) {
        my $headers = parse_headers(get_indexed_value($name, scalar $block->response_headers,
                                                      $idx, $need_array));
        while (my ($key, $val) = each %$headers) {
            if (!defined $val) {
                unlike($raw_headers // '', qr/^\s*\Q$key\E\s*:/ms,
                       "$name - header $key not present in the raw headers");
                next;
            }
            $val =~ s/\$ServerPort\b/$ServerPort/g;
            $val =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
            is(($res ? $res->header($key) : undef) // '', $val, "$name - header $key ok");
        }
    } elsif (defined $block->response_headers_like) {
        my $headers = parse_headers(get_indexed_value($name, scalar $block->response_headers_like,
                                                      $idx, $need_array));
        while (my ($key, $val) = each %$headers) {
            like(($res ? $res->header($key) : undef) // '', qr/^$val$/,
                 "$name - header $key like ok");
        }
    }
}

sub check_response_body ($$$$$) {
    my ($block, $res, $idx, $rep, $need_array) = @_;
    my $name = $block->name;
    my $content = $res ? $res->content : undef;

    if (defined $block->response_body) {
        my $expected = get_indexed_value($name, scalar $block->response_body, $idx, $need_array);
        if (defined $expected && !ref $expected) {
            $expected =~ s/\$ServerPort\b/$ServerPort/g;
            $expected =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
            $expected = expand_env($expected, $name);
        }
        my $desc = "$name - response_body - %s (repeated req $rep, req $idx)";
        if (ref $expected) {
            like($content, $expected, sprintf($desc, 'like'));
        } elsif ($NoLongString) {
            is($content, $expected, sprintf($desc, 'response is expected'));
        } else {
            is_string($content, $expected, sprintf($desc, 'response is expected'));
        }

    } elsif (defined $block->response_body_like || defined $block->response_body_unlike) {
        my $type = defined $block->response_body_like ? 'like' : 'unlike';
        my $spec = $type eq 'like' ? $block->response_body_like : $block->response_body_unlike;
        my $pat = get_indexed_value($name, $spec, $idx, $need_array);
        $pat =~ s/\$ServerPort\b/$ServerPort/g;
        $pat =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
        (my $summary = $content // '') =~ s/^\s+|\s+$//g;
        $summary =~ s/\s*\n\s*|\s{2,}/ /g;
        ($type eq 'like' ? \&like : \&unlike)->($content, qr/$pat/s,
            "$name - response_body_$type - response is expected ($summary)");
    }

    $_->($block, $content, $idx, $rep, 0) for @ResponseBodyChecks;
}

# error.log lines written since the last call (all of them with
# check_accum_error_log); $ErrLogFilePos is reset when a block starts.
sub error_log_data () {
    sleep $TestNginxSleep * 3;    # the log phase runs after the response is sent
    open my $in, '<', $ErrLogFile or return [];
    seek $in, $ErrLogFilePos, 0 if !$CheckAccumErrLog && $ErrLogFilePos;
    my @lines = <$in>;
    $ErrLogFilePos = tell $in if !$CheckAccumErrLog;
    close $in;
    return \@lines;
}

sub value_contains ($$);
sub value_contains ($$) {
    my ($val, $pat) = @_;
    return scalar grep { value_contains($_, $pat) } @$val if ref $val eq 'ARRAY';
    return $val =~ /\Q$pat\E/;
}

sub to_patterns ($) {    # text (one pattern a line), qr// or array => array copy
    my $pats = shift;
    return ref $pats eq 'Regexp' ? [$pats] : [@$pats] if ref $pats;
    chomp $pats;
    return [split /\n+/, $pats];
}

sub line_matches ($$) {    # strings match literally (substring), qr// as regex
    my ($line, $pat) = @_;
    return (ref $pat && $line =~ /$pat/) || $line =~ /\Q$pat\E/;
}

# $suffix: " (req N)" for (no_)error_log, "" for (no_)shutdown_error_log
sub check_log_patterns ($$$$$) {
    my ($name, $lines, $must, $must_not, $suffix) = @_;
    if (defined $must) {
        my $pats = to_patterns($must);
        for my $line (@$lines) {
            for my $pat (@$pats) {
                next if !defined $pat || !line_matches($line, $pat);
                pass("$name - pattern \"$pat\" matches a line in error.log$suffix");
                undef $pat;
            }
        }
        fail("$name - pattern \"$_\" should match a line in error.log$suffix")
            for grep { defined } @$pats;
    }
    if (defined $must_not) {
        my $pats = to_patterns($must_not);
        my %found;
        for my $i (0 .. $#$lines) {
            for my $pat (@$pats) {
                next if !line_matches($lines->[$i], $pat);
                Test::More->builder->no_ending(1) if $found{$pat}++;
                my ($ln, $p) = (fmt_str($lines->[$i]), fmt_str($pat));
                fail("$name - pattern \"$p\" should not match any line in error.log but "
                     . "matches line \"$ln\"$suffix\n"
                     . join '', @$lines[$i + 1 .. min($i + 9, $#$lines - 1)]);
            }
        }
        pass("$name - pattern \"" . fmt_str($_) . "\" does not match a line in error.log$suffix")
            for grep { !$found{$_} } @$pats;
    }
}

sub check_error_log ($$) {
    my ($block, $rep) = @_;
    my $name = $block->name;
    my @pats = (scalar $block->error_log, scalar $block->no_error_log);
    my $lines = error_log_data();
    check_log_patterns($name, $lines, $pats[0], $pats[1], " (req $rep)");

    # like the real one: only *warn* about these unless a pattern mentions them
    for my $what ('writing a global lua variable', '[alert', '[crit', '[emerg') {
        next if grep { defined $_ && value_contains($_, $what) } @pats;
        my $re = $what =~ /^\[(\w+)/ ? qr/\[$1\]/ : qr/\Q$what\E/;
        warn "WARNING: $name - " . fmt_str($_) . "\n" for grep { /$re/ } @$lines;
    }
    for my $line (grep { /\bAssertion .*?failed\b/ } @$lines) {
        Test::More->builder->no_ending(1);
        chomp $line;
        fail("$name - $line\n");
    }
}

# (no_)shutdown_error_log of the previous block, checked after its nginx exited
sub check_prev_block_shutdown_error_log () {
    my $block = $PrevBlock or return;
    my @pats = (scalar $block->shutdown_error_log, scalar $block->no_shutdown_error_log);
    return if !grep { defined } @pats;
    my $name = $block->name;
    if ($ENV{TEST_NGINX_NO_CLEAN}) {
        my $n = 0;
        $n += @{ to_patterns($_) } for grep { defined } @pats;
        SKIP: { skip("$name - shutdown_error_log - tests skipped due to dry_run", $n) }
        return;
    }
    check_log_patterns($name, error_log_data(), $pats[0], $pats[1], '');
}

END {
    return if $InSubprocess;
    local $?;
    cleanup();
    stop_nginx('END') if $UseValgrind || !$ENV{TEST_NGINX_NO_CLEAN};
    check_prev_block_shutdown_error_log();
}

1;
