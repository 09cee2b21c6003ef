#!/usr/bin/env python3
"""test/demo/ctrl-c.py: presses Ctrl-C in a real terminal, as a person would.

Runs a command in a new pseudo-terminal (its own session, the terminal's
foreground process group), copies what it prints to LOG, and once a line
containing WAIT_FOR has appeared sends the terminal's interrupt character
(^C: the kernel delivers SIGINT to the foreground process group). Then waits,
bounded, for the command to exit and for every process of its session to be
gone. Exit status: 0 if all of that happened, 1 otherwise (reason on stderr).

  ctrl-c.py LOG WAIT_FOR SECONDS -- COMMAND [ARGS...]
"""
import os
import pty
import select
import signal
import subprocess
import sys
import time


def session_processes(sid):
    out = subprocess.run(["ps", "-o", "pid=,stat=,args=", "-s", str(sid)],
                         capture_output=True, text=True).stdout
    return [l for l in out.splitlines() if l.split() and l.split()[1][0] != "Z"]


def main():
    if len(sys.argv) < 6 or sys.argv[4] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    log_path, wait_for, seconds, cmd = sys.argv[1], sys.argv[2].encode(), float(sys.argv[3]), sys.argv[5:]
    pid, fd = pty.fork()
    if pid == 0:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.execvp(cmd[0], cmd)
    seen, sent, buf, deadline = False, False, b"", time.time() + seconds
    status = None
    with open(log_path, "wb") as log:
        while time.time() < deadline:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    data = b""
                if not data:
                    break
                log.write(data)
                log.flush()
                buf = (buf + data)[-4096:]
                if not seen and wait_for in buf:
                    seen, ctrl_c_at = True, time.time() + 1.0
            if seen and not sent and time.time() >= ctrl_c_at:
                os.write(fd, b"\x03")
                sent = True
        end = time.time() + max(1.0, deadline - time.time())
        while status is None and time.time() < end:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
            else:
                time.sleep(0.1)
    if not seen:
        print("ctrl-c.py: %r never appeared" % wait_for.decode(), file=sys.stderr)
    if status is None:
        print("ctrl-c.py: the command did not exit after ^C", file=sys.stderr)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return 1
    left = session_processes(pid)
    if left:
        print("ctrl-c.py: still running after exit:\n" + "\n".join(left), file=sys.stderr)
        for line in left:                      # ours (this session): stop them by pid
            try:
                os.kill(int(line.split()[0]), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        return 1
    print("ctrl-c.py: exited with %s after ^C" % (os.waitstatus_to_exitcode(status)))
    return 0 if (seen and sent) else 1


if __name__ == "__main__":
    sys.exit(main())
