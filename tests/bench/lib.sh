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
