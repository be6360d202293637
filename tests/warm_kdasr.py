"""A warm launcher for the `kdasr` commands a recipe test runs by the dozen (the recipes take their command
prefix from $KDASR): each command is still its own process, with its own argv, environment, working
directory, stdin/stdout/stderr, exit status and a fresh import of kdasr, but it is forked from a server
that has already imported torch (and torch._dynamo, which the first optimiser built imports), onnx and
the CLI's libraries, instead of importing them again: ~2-4 CPU-s saved per torch command.

    python warm_kdasr.py serve SOCKET [MODULE ...]   the server (tests start it: `warm_kdasr` below)
    python -I warm_kdasr.py SOCKET ARG ...           a client: `kdasr ARG ...`, forked by the server
    python -I warm_kdasr.py SOCKET --script PY ARG   a client: `python PY ARG ...` (a test's worker script)

The client passes its own stdin/stdout/stderr to the server (SCM_RIGHTS) and exits with the command's
status. The server forks a monitor per client, which forks the command and waits for it; a client that
dies (SIGKILL of its process group, say) has its command killed by the monitor at once, and SIGINT/SIGTERM
to a client are passed on to the command. The server stays single-threaded (it never runs a thread while
forking; onnxruntime, whose import starts one, is not preloaded), and it reaps every child, so the CPU time
of the commands counts in the test's RUSAGE_CHILDREN as a plain subprocess's would."""

from __future__ import annotations

import atexit
import json
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

PRELOAD = ("torch", "torch._dynamo", "onnx", "numpy", "typer", "rich.progress", "sentencepiece", "jiwer")
# what the BERT teacher's commands (teacher bert, soft labels, quality, export-lm) load: preloaded on request
BERT_MODULES = ("transformers.models.bert.modeling_bert", "transformers.models.modernbert.modeling_modernbert")
STATUS = struct.Struct("!i")


def _recv_all(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def client(path: str, args: list[str]) -> int:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(path)
    request = json.dumps({"argv": args, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    socket.send_fds(conn, [STATUS.pack(len(request))], [0, 1, 2])
    conn.sendall(request)
    for sig in (signal.SIGINT, signal.SIGTERM):  # passed on to the command
        signal.signal(sig, lambda s, _f: conn.send(bytes([s])))
    try:
        code = STATUS.unpack(_recv_all(conn, STATUS.size))[0]
    except EOFError:
        return 1
    if code < 0:  # the command died of a signal: so does its client, as the parent would see it
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code & 0xFF


def _command(fds: list[int], req: dict) -> None:
    """In the forked command process: become `python -m kdasr ARGV` in the client's place; never returns."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for i, fd in enumerate(fds):
        os.dup2(fd, i)
        os.close(fd)
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    import runpy

    code, argv = 0, req["argv"]
    script = argv[1] if argv[:1] == ["--script"] else None
    try:
        if script:
            sys.argv, sys.path[0] = argv[1:], os.path.dirname(os.path.abspath(script))  # as `python PY` has them
            runpy.run_path(script, run_name="__main__")
        else:
            sys.argv, sys.path[0] = ["kdasr", *argv], req["cwd"]  # as `python -m` has them
            runpy.run_module("kdasr", run_name="__main__", alter_sys=True)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, int | None):
            print(e.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - as the interpreter would: the traceback, exit status 1
        import traceback

        traceback.print_exc()
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code & 0xFF)


def _monitor(conn: socket.socket, fds: list[int], req: dict) -> None:
    """In the forked monitor: fork the command, pass on the client's signals, kill the command when the
    client goes away, report its status; never returns."""
    import select

    pid = os.fork()
    if pid == 0:
        conn.close()
        _command(fds, req)
    for fd in fds:
        os.close(fd)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if select.select([conn], [], [], 0.05)[0]:
            data = conn.recv(16)
            if not data:  # the client died: so does its command
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                os._exit(1)
            for s in data:
                os.kill(pid, s)
    try:  # negative: killed by that signal (the client then dies of it too)
        conn.sendall(STATUS.pack(os.waitstatus_to_exitcode(status)))
    except OSError:
        pass
    os._exit(0)


def serve(path: str, preload: list[str]) -> None:
    import importlib

    for name in [*PRELOAD, *preload]:
        importlib.import_module(name)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(path):  # left by a server that was killed
        os.unlink(path)
    server.bind(path)
    server.listen(16)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", flush=True)
    try:
        while True:
            conn, _ = server.accept()
            try:
                head, fds, _flags, _addr = socket.recv_fds(conn, STATUS.size, 3)
                req = json.loads(_recv_all(conn, STATUS.unpack(head)[0]))
            except (OSError, EOFError, ValueError, struct.error):
                conn.close()
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            if os.fork() == 0:
                server.close()
                _monitor(conn, fds, req)
            conn.close()
            for fd in fds:
                os.close(fd)
            while True:  # reap the monitors that finished (their CPU then counts for the server's parent)
                try:
                    if os.waitpid(-1, os.WNOHANG)[0] == 0:
                        break
                except ChildProcessError:
                    break
    finally:
        server.close()
        os.unlink(path)
        while True:
            try:
                os.wait()
            except ChildProcessError:
                break


@contextmanager
def warm_kdasr(folder: Path, env: dict, preload: tuple[str, ...] = ()) -> Iterator[str]:
    """A server in FOLDER, started with ENV (torch reads OMP_NUM_THREADS when it loads): the $KDASR
    command prefix of its clients while in the block; stopped (and its children reaped) after it."""
    sock = folder / "warm-kdasr.sock"
    proc = subprocess.Popen([sys.executable, __file__, "serve", str(sock), *preload], env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"warm_kdasr server did not start (exit {proc.wait()})")
        yield f"{sys.executable} -I {__file__} {sock}"
    finally:
        proc.terminate()
        proc.wait(timeout=60)


class Shared:
    """One launcher for a whole test process (conftest's run_kdasr), started at its first use and stopped by
    stop() at the end of the session, or at exit: here, not in conftest, because conftest is imported under
    two names (`conftest`, `tests.conftest`), each with its own globals."""

    def __init__(self) -> None:
        self._stack = ExitStack()
        self.prefix: list[str] = []

    def get(self, env: dict) -> list[str]:
        if not self.prefix:
            folder = Path(tempfile.mkdtemp(prefix="kdasr-warm-"))
            self._stack.callback(shutil.rmtree, folder, ignore_errors=True)
            self.prefix = shlex.split(self._stack.enter_context(warm_kdasr(folder, env)))
        return self.prefix

    def stop(self) -> None:
        self.prefix = []
        self._stack.close()  # the server stopped and its children reaped: their CPU counts for this process


SHARED = Shared()
atexit.register(SHARED.stop)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(client(sys.argv[1], sys.argv[2:]))
