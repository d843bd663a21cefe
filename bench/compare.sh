#!/usr/bin/env bash
# Side-by-side benchmarks: this crate in every mode against plain std::net, Python's socketserver,
# redis-server (under redis-benchmark), nginx (under wrk) and tokio (framed echo), all on
# loopback, in one run; over TLS against redis-server --tls-port and nginx ssl (the same
# certificate for all, made with the openssl CLI), with each server's CPU time per request.
# Writes BENCHMARKS.md, bench/throughput.png and bench/results.json. Not part of CI (.ci/run):
# it takes 30-40 minutes. Options go to bench/compare.py: --quick, --rounds N, --duration S,
# --only echo,resp,http,churn,udp,idle,slowloris,echo1k,resp-tls,http-tls,handshakes,plain-tls-build
# (the report keeps the previous rows of the workloads not run).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v redis-benchmark >/dev/null || need_apt+=(redis-tools)
command -v wrk >/dev/null || need_apt+=(wrk)
command -v nginx >/dev/null || need_apt+=(nginx)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v ss >/dev/null || need_apt+=(iproute2)
# Counts the connections a server accepts, to check that `Connection: close` reconnects.
command -v strace >/dev/null || need_apt+=(strace)
if ((${#need_apt[@]})); then
    echo "== installing ${need_apt[*]}" >&2
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >&2
fi
# The packages start their services on install; the benchmark starts its own on free ports.
for svc in redis-server nginx; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
        echo "note: the system's $svc service is running; it is left alone" >&2
    fi
done
if ! python3 -c "import matplotlib" 2>/dev/null; then
    echo "== installing matplotlib (for the chart)" >&2
    python3 -m pip install -q matplotlib >&2 || echo "warning: no matplotlib, no chart" >&2
fi

# 10,000 and 20,000 idle connections: the client and the server each hold that many
# descriptors. Where the hard limit is lower, compare.py spreads them (see its idle_test).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt 20100 ]; then
    echo "note: ulimit -n is $(ulimit -n): one process holds fewer than 20,000 connections" >&2
fi

echo "== building the examples (with and without the tls feature), loadgen and tokio_echo (release)" >&2
# Every contestant runs the examples built with `tls` and `metrics` (the metrics workload's
# `--metrics`); the plain-tls-build workload also runs them built without `tls` (a target
# directory of their own, so neither build undoes the other).
cargo build --release --features tls,metrics --examples -q
cargo build --release --examples -q --target-dir target/bench-notls
# `tokio` builds the tokio_echo contestant (an optional dependency, so cargo test never builds it).
cargo build --release -p socketserver-bench --features tokio --bins -q

exec python3 bench/compare.py "$@"
