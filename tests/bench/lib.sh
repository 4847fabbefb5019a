# lib.sh - shared by the benchmark scripts (sourced, not run).

# A free TCP port on 127.0.0.1.
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# bench_conf FILE JOURNAL PORT MAX_CONNECTIONS: the daemon, journal and
# listener sections every benchmark config starts with (targets appended after).
# Every benchmark connection comes from 127.0.0.1: the per-peer cap is the total.
bench_conf() {
	cat > "$1" <<CONF
[daemon]
log_level = notice
[journal]
path = $2
max_size = 4G
[listener bench]
listen = 127.0.0.1:$3
max_connections = $4
max_connections_per_peer = $4
CONF
}

# wait_ready LOG [N]: until hl7qd has logged "ready" N times (default 1), 5 s at most.
wait_ready() {
	for _ in $(seq 50); do [ "$(grep -c ready "$1")" -ge "${2:-1}" ] && return; sleep 0.1; done
}

# bench_nginx OUT: a self-signed certificate for 127.0.0.1 (OUT/cert.pem,
# OUT/key.pem) and nginx serving HTTPS (http2) on a free port, where
# location /ok answers 200 "ok"; sets ngport and ngpid, and an EXIT trap
# that stops nginx and hl7qd (pid, empty until the caller starts one).
bench_nginx() {
	local out=$1
	mkdir -p $out/nginx
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
		-addext "subjectAltName=IP:127.0.0.1" -keyout $out/key.pem -out $out/cert.pem 2>/dev/null
	ngport=$(free_port)
	cat > $out/nginx/nginx.conf <<CONF
worker_processes 1;
pid $PWD/$out/nginx/nginx.pid;
error_log $PWD/$out/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $PWD/$out/nginx/body; proxy_temp_path $PWD/$out/nginx/proxy;
    fastcgi_temp_path $PWD/$out/nginx/f; uwsgi_temp_path $PWD/$out/nginx/u; scgi_temp_path $PWD/$out/nginx/s;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$ngport ssl http2;
        ssl_certificate $PWD/$out/cert.pem; ssl_certificate_key $PWD/$out/key.pem;
        client_body_buffer_size 64k;
        location /ok { return 200 "ok"; }
    }
}
CONF
	nginx -p $PWD/$out/nginx -c $PWD/$out/nginx/nginx.conf -g 'daemon off;' &
	ngpid=$!
	pid=
	trap 'kill $ngpid 2>/dev/null || true; [ -n "$pid" ] && kill $pid 2>/dev/null || true' EXIT
	sleep 0.5
}

# bench_target FILE OUT ORDERING CONCURRENCY: appends the [target nginx]
# section (the nginx of bench_nginx OUT) to the config FILE; callers may
# append more keys of that section after it.
bench_target() {
	cat >> "$1" <<CONF
[target nginx]
url = https://127.0.0.1:$ngport/ok
ca_file = $PWD/$2/cert.pem
ordering = $3
concurrency = $4
CONF
}
