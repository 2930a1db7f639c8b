#!/usr/bin/env bash
# Starling against Debian's mosquitto over each transport, on this machine,
# in one run: plain TCP, TLS, WebSocket and WebSocket over TLS. Both brokers
# get the same throwaway CA and server certificate (EC P-256, made here with
# openssl); the bench's comparison runner alternates A B on each scenario and
# reads each broker's CPU seconds from /proc. TLS handshakes per second per
# core = handshakes completed / the broker's CPU seconds over the connect
# phase. Prints Markdown on stdout.
#
#   bench/compare-transports.sh [BUILD_DIR] > bench/results/DATE-transports.md
#
# Environment: ROUNDS (default 2), SECONDS_PER_RUN (default 6), WORKERS.
set -euo pipefail
. "$(dirname "$0")/compare-lib.sh"
rounds=${ROUNDS:-2}
secs=${SECONDS_PER_RUN:-6}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# A CA and a server certificate for 127.0.0.1.
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -keyout "$work/ca.key" -out "$work/ca.pem" -days 2 \
	-subj "/CN=bench CA" 2>/dev/null
openssl req "${ec[@]}" -keyout "$work/server.key" -out "$work/server.csr" -subj "/CN=127.0.0.1" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$work/ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -set_serial 7 \
	-days 2 -extfile "$work/ext" -out "$work/server.pem" 2>/dev/null
chmod 644 "$work"/*.pem "$work"/*.key # mosquitto drops root and reads them as its own user
chmod 755 "$work"

start_brokers() {
	s_tcp=$(free_port) s_tls=$(free_port) s_ws=$(free_port) s_wss=$(free_port)
	"$starling" --listen=127.0.0.1:$s_tcp --tls-listen=127.0.0.1:$s_tls --ws-listen=127.0.0.1:$s_ws \
		--wss-listen=127.0.0.1:$s_wss --tls-cert-file="$work/server.pem" \
		--tls-key-file="$work/server.key" --metrics-listen=127.0.0.1:0 --log-level=warn \
		--queue-messages-max=1000000 --queue-bytes-max=4294967296 --inflight-max=65535 \
		${WORKERS:+--workers=$WORKERS} 2>"$work/starling.log" &
	spid=$!
	pids+=("$spid")
	m_tcp=$(free_port) m_tls=$(free_port) m_ws=$(free_port) m_wss=$(free_port)
	cat >"$work/mosquitto.conf" <<EOF
per_listener_settings false
allow_anonymous true
max_connections -1
max_queued_messages 1000000
max_inflight_messages 0
log_dest none
listener $m_tcp 127.0.0.1
listener $m_tls 127.0.0.1
certfile $work/server.pem
keyfile $work/server.key
listener $m_ws 127.0.0.1
protocol websockets
listener $m_wss 127.0.0.1
protocol websockets
certfile $work/server.pem
keyfile $work/server.key
EOF
	mosquitto -c "$work/mosquitto.conf" &
	mpid=$!
	pids+=("$mpid")
	sleep 0.7
}

echo "# Starling vs mosquitto by transport — $(date -u +%Y-%m-%d)"
echo
machine_line
versions_line "; $(openssl version)"
echo "- certificate: EC P-256, TLS 1.3 (both brokers' default); command: \`bench/compare-transports.sh\` (ROUNDS=$rounds, SECONDS_PER_RUN=$secs)"
echo
echo "A = Starling, B = mosquitto. Each figure is the mean over the rounds; the ratio is B/A."
echo

# compare TITLE TRANSPORT(tcp|tls|ws|wss) SCENARIO...
compare() {
	local title=$1 tr=$2
	shift 2
	local extra=()
	case $tr in
	tls) extra=(--tls --cafile "$work/ca.pem") ;;
	ws) extra=(--ws) ;;
	wss) extra=(--ws --tls --cafile "$work/ca.pem") ;;
	esac
	echo "## $title"
	echo
	echo '```'
	echo "\$ starling-bench compare --rounds $rounds $* ${extra[*]/$work\//}"
	start_brokers
	local sp=$s_tcp mp=$m_tcp
	case $tr in
	tls) sp=$s_tls mp=$m_tls ;;
	ws) sp=$s_ws mp=$m_ws ;;
	wss) sp=$s_wss mp=$m_wss ;;
	esac
	local rc=0 s0 m0 s1 m1
	s0=$(cpu_ticks "$spid") m0=$(cpu_ticks "$mpid")
	"$bench" compare --a 127.0.0.1:$sp --a-pid "$spid" --b 127.0.0.1:$mp --b-pid "$mpid" \
		--rounds "$rounds" "$@" "${extra[@]}" --quiet >"$work/out" 2>&1 || rc=$?
	s1=$(cpu_ticks "$spid") m1=$(cpu_ticks "$mpid")
	grep -v '^$' "$work/out" || true
	[ "$rc" -eq 0 ] || echo "(starling-bench exited $rc)"
	if [ "$1" = conn ]; then
		# Each broker's CPU over its own connect runs (the other one idles).
		local hz n
		hz=$(getconf CLK_TCK) n=$(($3 * rounds))
		awk -v n="$n" -v hz="$hz" -v s=$((s1 - s0)) -v m=$((m1 - m0)) 'BEGIN {
			printf "%-32s %16.2f %16.2f %10.3f\n", "broker_cpu_s", s / hz, m / hz, (s ? m / s : 0);
			printf "%-32s %16.0f %16.0f %10.3f\n", "connects_per_broker_cpu_s",
			       s ? n * hz / s : 0, m ? n * hz / m : 0, (m && s ? s / m : 0) }'
	fi
	stop_brokers
	echo '```'
	echo
}

for tr in tcp tls; do
	compare "connects: 2,000 clients as fast as they go, $tr" $tr conn -c 2000 --connect-rate 0 -d 2
done
for tr in tcp tls ws wss; do
	compare "pairs 100/100, QoS 0, 64 B, end-to-end window 64, $tr" $tr pairs -c 100 -q 0 -s 64 -d "$secs" --e2e-window 64
done
for tr in tcp tls ws wss; do
	compare "pairs 100/100, QoS 1, 64 B, end-to-end window 64, $tr" $tr pairs -c 100 -q 1 -s 64 -d "$secs" --e2e-window 64 --inflight 64
done
