"""Helpers the Python scripts share (as scripts/lib.sh does for the shell ones).

Servers are started in a session and process group of their own and stopped
whole (`stop`); `stop_on_signals` turns TERM and HUP into SystemExit, so a
script's `finally` blocks stop its servers on TERM as they do on Ctrl-C."""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A port nothing listens on (the discard port: only root could bind it, no test
# machine serves it), for settings that must point at a server that is not there.
CLOSED_PORT = 9


def stop_on_signals():
    """TERM and HUP end the script as Ctrl-C does: `finally` blocks run."""
    def leave(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, leave)
    signal.signal(signal.SIGHUP, leave)


def spawn(args, log, **popen):
    """Starts `args` in a process group of its own, output to `log` (a path)."""
    out = open(log, "w")
    try:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, **popen)
    finally:
        out.close()


def stop(process, grace=10):
    """TERM to the process's group, KILL after `grace` seconds; waits for it."""
    if process is None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=grace)
            # Anything of its group still running (a child it left behind).
            deadline = time.time() + grace
            while time.time() < deadline:
                try:
                    os.killpg(process.pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.05)
        except subprocess.TimeoutExpired:
            pass


def wait_for(condition, seconds, process=None, what="a server", log=None):
    """Until `condition()` is true (its value returned); exits with a message when
    `process` ends first or after `seconds`."""
    deadline = time.time() + seconds
    while True:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            tail = Path(log).read_text(errors="replace")[-2000:] if log else ""
            sys.exit(f"{what} ended (exit {process.returncode}) before it was ready\n{tail}")
        if time.time() > deadline:
            sys.exit(f"{what} was not ready within {seconds} s")
        time.sleep(0.1)


def start_moto(log, env=None, venv=ROOT / ".venv"):
    """moto_server of the tests (tests/moto-ses/server.py) on 127.0.0.1, on a port
    it binds itself and reports: (process, endpoint URL)."""
    port_file = Path(tempfile.mkdtemp()) / "port"
    process = spawn([str(venv / "bin/python"), str(ROOT / "tests/moto-ses/server.py"), "-H", "127.0.0.1",
                     "-p", "0", "--port-file", str(port_file)], log, env={**os.environ, **(env or {})})
    port = wait_for(lambda: port_file.exists() and port_file.read_text().strip(), 60, process,
                    "moto_server", log)
    return process, f"http://127.0.0.1:{port}"


def start_local_api(args, log, env):
    """target/debug/local-api with PORT=0 (it binds a free port and prints its URL):
    (process, URL)."""
    process = spawn([str(ROOT / "target/debug/local-api"), *args], log, env={**env, "PORT": "0"})

    def url():
        found = re.search(r"^Domains API listening on (\S+)", Path(log).read_text(errors="replace"), re.M)
        return found and found.group(1)
    return process, wait_for(url, 60, process, "local-api", log)


def listening_ports(pid):
    """The TCP ports process `pid` listens on (from /proc: its sockets' inodes)."""
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return set()
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def candidate_port():
    """A TCP port free on 127.0.0.1 at this moment, for servers that cannot bind
    port 0 themselves: whoever uses it retries with another when it is taken."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
