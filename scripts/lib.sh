# Helpers the scripts share (sourced: `. scripts/lib.sh`).
#
# Every process a script starts in the background is started with `spawn`, in a
# process group of its own, and `stop_on_exit` makes the script stop every such
# group (TERM, then KILL after 10 s) however it ends: success, failure, Ctrl-C
# (INT), TERM or HUP. A group is ended whole, so servers a command started (a
# cargo-lambda watch's functions, a sub-script's dev server) go with it.

log() { printf '==> %s\n' "$*" >&2; }

# Process groups `spawn` and `step` started and have not yet stopped.
STARTED_GROUPS=()

# spawn LOG COMMAND...: runs COMMAND in the background in a session and process
# group of its own (setsid: its pid is the group's id), stdin closed, stdout and
# stderr to LOG. Sets SPAWNED to its pid. Never call it inside $(...): the group
# would not be remembered.
spawn() {
  local out=$1
  shift
  setsid "$@" >"$out" 2>&1 </dev/null &
  SPAWNED=$!
  STARTED_GROUPS+=("$SPAWNED")
}

# forget GROUP: GROUP has ended (and been waited for); stop_started leaves it alone
# (its number may be reused).
forget() {
  local kept=() group
  for group in "${STARTED_GROUPS[@]}"; do [ "$group" = "$1" ] || kept+=("$group"); done
  STARTED_GROUPS=("${kept[@]}")
}

# stop_started: TERM to every group started and not yet ended, then waits for each
# to be gone; KILL to what is left after 10 s.
stop_started() {
  local group deadline=$((SECONDS + 10))
  ((${#STARTED_GROUPS[@]})) || return 0
  for group in "${STARTED_GROUPS[@]}"; do kill -TERM -- "-$group" 2>/dev/null || true; done
  for group in "${STARTED_GROUPS[@]}"; do
    while kill -0 -- "-$group" 2>/dev/null; do
      if ((SECONDS >= deadline)); then
        log "process group $group did not stop on TERM within 10 s: KILL"
        kill -KILL -- "-$group" 2>/dev/null || true
        break
      fi
      sleep 0.1
    done
  done
  STARTED_GROUPS=()
}

# stop_on_exit [FUNCTION]: on exit (any exit), FUNCTION (if given) then
# stop_started; INT, TERM and HUP exit through it too, with 130, 143 and 129.
stop_on_exit() {
  ON_EXIT=${1:-}
  # While stopping, a second Ctrl-C does not cut the cleanup short.
  trap 'status=$?; trap "" INT TERM HUP; trap - EXIT; stop_started; [ -z "$ON_EXIT" ] || "$ON_EXIT" || true; exit "$status"' EXIT
  trap 'log "interrupted (INT): stopping what was started"; exit 130' INT
  trap 'log "terminated (TERM): stopping what was started"; exit 143' TERM
  trap 'exit 129' HUP
}

# step OUT COMMAND...: runs COMMAND in a process group of its own (as spawn does),
# its stdout shown and copied to OUT, stderr shown; waits for it and returns its
# status. The traps of stop_on_exit stop it (and what it started) on INT or TERM.
step() {
  local out=$1 status=0
  shift
  setsid bash -o pipefail -c '"${@:2}" | tee "$1"' step "$out" "$@" </dev/null &
  local group=$!
  STARTED_GROUPS+=("$group")
  wait "$group" || status=$?
  forget "$group"
  return "$status"
}

# alive PID: whether the process is still running (not a zombie).
alive() {
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [ -n "$state" ] && [[ "$state" != Z* ]]
}

# wait_for_line FILE REGEX SECONDS PID WHAT [LOG]: prints the first line of FILE
# that matches REGEX (extended) once it appears; fails if PID ends first or after
# SECONDS, showing the end of LOG (FILE unless given).
wait_for_line() {
  local file=$1 regex=$2 deadline=$((SECONDS + $3)) pid=$4 what=$5 line
  local shown=${6:-$1}
  while :; do
    line=$(grep -m1 -E "$regex" "$file" 2>/dev/null || true)
    if [ -n "$line" ]; then
      printf '%s\n' "$line"
      return 0
    fi
    if ! alive "$pid"; then
      log "$what ended before it was ready (log: $shown):"
      tail -5 "$shown" >&2 || true
      return 1
    fi
    if ((SECONDS >= deadline)); then
      log "$what was not ready within $3 s (log: $shown)"
      return 1
    fi
    sleep 0.1
  done
}

# start_moto LOG PORT_FILE [ENV=VALUE...]: starts the moto_server of the tests
# (tests/moto-ses/server.py) on 127.0.0.1, on a port it binds itself (-p 0) and
# writes to PORT_FILE once it listens; sets MOTO_PORT_STARTED to that port and
# SPAWNED to its pid. No port is chosen before it is bound, so none can be taken
# in between.
start_moto() {
  local out=$1 port_file=$2
  shift 2
  rm -f "$port_file"
  spawn "$out" env "$@" "${VENV:-.venv}/bin/python" tests/moto-ses/server.py -H 127.0.0.1 -p 0 \
    --port-file "$port_file"
  MOTO_PORT_STARTED=$(wait_for_line "$port_file" '^[0-9]+$' 60 "$SPAWNED" moto_server "$out") || return 1
}

# start_local_api LOG ARGS...: starts target/debug/local-api with PORT=0 (it binds
# a free port itself and prints its URL) and the caller's environment; sets
# LOCAL_API_URL once it listens, and SPAWNED to its pid.
start_local_api() {
  local out=$1
  shift
  spawn "$out" env PORT=0 target/debug/local-api "$@"
  local line
  line=$(wait_for_line "$out" '^Domains API listening on ' 60 "$SPAWNED" local-api) || return 1
  LOCAL_API_URL=${line#Domains API listening on }
  LOCAL_API_URL=${LOCAL_API_URL%%[[:space:]]*}
}

# A port nothing listens on, for settings that must point at a server that is not
# there (DNS_NAMESERVERS in the walkthroughs: no query leaves the machine): the
# discard port, which only root could bind and no test machine serves.
CLOSED_PORT=9

# candidate_port: a TCP port free on 127.0.0.1 at this moment. Only for servers
# that cannot bind port 0 themselves; whoever uses it must retry with another when
# the server finds it taken (scripts/moto-walkthrough does).
candidate_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
