# Helpers the scripts share (sourced: `. scripts/lib.sh`).

log() { printf '==> %s\n' "$*" >&2; }

# A TCP port free on 127.0.0.1 right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for_port PORT SECONDS WHAT: until something listens on 127.0.0.1:PORT.
wait_for_port() {
  local deadline=$((SECONDS + $2))
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      log "$3 did not start listening on 127.0.0.1:$1 within $2 s"
      return 1
    fi
    sleep 0.2
  done
}
