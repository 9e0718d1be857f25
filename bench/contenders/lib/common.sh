# Shared by the contenders' start/stop scripts (sourced, bash).

CONTENDERS=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NGINX=${NGINX:-/usr/sbin/nginx}

die() { echo "$0: $*" >&2; exit 1; }

# wait_port PORT [SECONDS]: until 127.0.0.1:PORT accepts a connection
wait_port() {
    local port=$1 tries=$(( ${2:-10} * 20 ))
    for ((i = 0; i < tries; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

# nginx_conf RUNDIR MODULES HTTP: RUNDIR/conf/nginx.conf, the same frame for
# every nginx contender (and the mock): one worker, daemon, no access log
nginx_conf() {
    local dir=$1 modules=$2 http=$3
    mkdir -p "$dir/conf" "$dir/logs"
    cat > "$dir/conf/nginx.conf" <<_EOC_
$modules
daemon on;
master_process on;
worker_processes 1;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 16384; }
http {
    access_log off;
    keepalive_requests 100000;
    client_body_buffer_size 64k;
    client_max_body_size 1m;
$http
}
_EOC_
}

# nginx_start RUNDIR PORT: starts the nginx of RUNDIR, waits for PORT,
# writes RUNDIR/pids (the master, then its worker)
nginx_start() {
    local dir=$1 port=$2 master
    "$NGINX" -p "$dir/" -c conf/nginx.conf -e logs/error.log \
        || die "nginx did not start (see $dir/logs/error.log)"
    wait_port "$port" 10 || die "nothing listens on $port"
    for ((i = 0; i < 100; i++)); do
        [ -s "$dir/logs/nginx.pid" ] && break
        sleep 0.05
    done
    master=$(cat "$dir/logs/nginx.pid")
    { echo "$master"; pgrep -P "$master"; } > "$dir/pids"
}

# stop_pids RUNDIR: TERM to the PIDs of RUNDIR/pids (the first one is the
# master/main process), waits for all of them, KILL after 10 s
stop_pids() {
    local dir=$1 pids
    [ -f "$dir/pids" ] || return 0
    pids=$(cat "$dir/pids")
    kill -TERM $(head -n1 "$dir/pids") 2>/dev/null
    for ((i = 0; i < 200; i++)); do
        local alive=
        for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ -z "$alive" ] && { rm -f "$dir/pids"; return 0; }
        sleep 0.05
    done
    kill -KILL $pids 2>/dev/null
    rm -f "$dir/pids"
}
