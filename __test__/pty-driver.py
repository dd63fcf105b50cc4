#!/usr/bin/env python3
"""Runs a command in a pseudo-terminal and plays a script against it, as a person at a terminal
would: wait for some output, type something, and so on. Python's standard pty module gives the
tests a real terminal without a native Node package.

    python3 pty-driver.py '{"argv": [...], "env": {...}, "steps": [{"expect": "regex"}, {"send": "text"}]}'

Prints one JSON object: the exit status, whether every step passed, the failed step, and the
whole transcript (the terminal's output bytes, base64).
"""
import base64
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time


def main():
    spec = json.loads(sys.argv[1])
    env = dict(os.environ)
    env.update(spec.get("env", {}))
    rows, cols = spec.get("rows", 40), spec.get("cols", 200)
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(spec["argv"][0], spec["argv"], env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    transcript = bytearray()
    cursor = 0

    def read_for(seconds):
        """Reads what the program writes for up to `seconds`; False once it has closed the terminal."""
        ready, _, _ = select.select([fd], [], [], seconds)
        if not ready:
            return True
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the program exited and the terminal is gone
            return False
        if not data:
            return False
        transcript.extend(data)
        return True

    failed = None
    for index, step in enumerate(spec["steps"]):
        if "send" in step:
            os.write(fd, step["send"].encode("utf-8"))
            continue
        pattern = re.compile(step["expect"])
        deadline = time.monotonic() + step.get("timeout", 120)
        open_ = True
        while True:
            text = transcript.decode("utf-8", errors="replace")
            match = pattern.search(text, cursor)
            if match:
                cursor = match.end()
                break
            if not open_ or time.monotonic() > deadline:
                failed = {"step": index, "expect": step["expect"]}
                break
            open_ = read_for(0.05)
        if failed:
            break

    if failed:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + spec.get("exitTimeout", 60)
    status = None
    while status is None:
        read_for(0.05)
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(raw)
            # What the program wrote just before it exited.
            while read_for(0):
                if not select.select([fd], [], [], 0)[0]:
                    break
        elif time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            failed = failed or {"step": len(spec["steps"]), "expect": "exit"}
    print(json.dumps({"status": status, "ok": failed is None, "failed": failed, "transcript": base64.b64encode(bytes(transcript)).decode()}))


if __name__ == "__main__":
    main()
