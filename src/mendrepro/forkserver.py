"""Run a local workflow's jobs in processes forked from one that has already imported torch and transformers.

Every job of the DAG is a fresh ``python -m mendrepro <command>``, and on the tiny models importing torch and
transformers (4-5 s on this project's 2-core machine) is most of a job. With ``fork_server: true`` in the config,
a local Snakemake run starts one server (the Snakefile's ``onstart``), which imports ``mendrepro.cli`` once and
listens on a Unix socket named by ``MENDREPRO_FORK_SERVER``. A job's ``python -m mendrepro`` then hands the server
its arguments, working directory, environment and standard streams (the file descriptors themselves, so ``> log
2>&1`` still goes to the job's log), the server forks, the child runs the command as the job's own process would,
and the job exits with the child's status. The job's process stays the one Snakemake waits on: when it dies
(Ctrl-C, a kill, a killed Snakemake) the server kills the child at once, and when the server dies the job reports
it in one line.

A job runs in its own process as before wherever the server cannot serve it: no server yet (the first jobs of a
run, while it imports), a cluster job (``SLURM_JOB_ID`` set), the table and figure commands (no torch), and the
memory probe, whose peak-memory windows are measured in a process of their own. Snakemake's ``benchmark:`` files
keep the job's wall time; their CPU time and peak memory are then the waiting process's, not the child's.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import struct
import sys
import tempfile
from pathlib import Path

ENV = "MENDREPRO_FORK_SERVER"
# The pipeline's jobs that load torch; the others (tables, the memory probe, downloads, `edit`) run in their own
# process.
SERVED = frozenset({"world", "pretrain", "self-sample", "train", "evaluate"})
_HEADER = struct.Struct("!Q")
_STATUS = struct.Struct("!i")
_ACCEPTED = b"A"
_PREFIX = "mendrepro-fork-"


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def command_of(argv: list[str]) -> str | None:
    """The subcommand of ``argv``: its first word that is neither an option nor ``--threads``' value."""
    words = iter(argv)
    for word in words:
        if word == "--threads":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def forward(argv: list[str]) -> int | None:
    """Run ``argv`` in a child of the run's fork server and return its exit status; None where this process
    should run it itself (no server, a cluster job, a command not served, streams that cannot be handed over)."""
    path = os.environ.get(ENV)
    if not path or "SLURM_JOB_ID" in os.environ or command_of(argv) not in SERVED:
        return None
    try:
        for fd in (0, 1, 2):
            os.fstat(fd)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        payload = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
        socket.send_fds(sock, [_HEADER.pack(len(payload))], [0, 1, 2])
        sock.sendall(payload)
        if sock.recv(1) != _ACCEPTED:
            return None
    except OSError:
        return None
    status = _recv_exact(sock, _STATUS.size)
    if len(status) < _STATUS.size:
        print(f"python -m mendrepro: the fork server ({path}) stopped during this job", file=sys.stderr)
        return 1
    return _STATUS.unpack(status)[0]


def _exit_status(wait_status: int) -> int:
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return os.WEXITSTATUS(wait_status)


def _run_child(main, request: dict, fds: list[int]) -> None:
    """In the forked child: become the job's process (streams, directory, environment, argv), run, exit."""
    code = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ.pop(ENV, None)
        sys.argv = [sys.argv[0], *request["argv"]]
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        code = main(request["argv"])
    except SystemExit as e:
        code = e.code
        if not isinstance(code, int | None):
            print(code, file=sys.stderr)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        import atexit

        atexit._run_exitfuncs()  # what a normal interpreter exit runs (logging's flush among them)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        # sys.exit's rule for main's value or SystemExit's code: None is 0, an int itself, anything else 1.
        os._exit(0 if code is None else code if isinstance(code, int) else 1)


def serve(path: str, parent: int, main=None) -> None:
    """Import the pipeline once, then fork one child per job that connects to ``path`` to run ``main`` (the CLI's),
    until the process ``parent`` (the Snakemake run) is gone or a SIGTERM."""
    if main is None:
        from mendrepro.cli import main

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    jobs: dict[socket.socket, int] = {}
    try:
        while not stop and os.getppid() == parent:
            readable, _, _ = select.select([server, *jobs], [], [], 0.5)
            for conn in readable:
                if conn is server:
                    _accept(server, jobs, main)
                else:
                    # A job's process sends nothing after its request: readable means it is gone.
                    _kill(jobs[conn])
            _reap(jobs)
    finally:
        for pid in jobs.values():
            _kill(pid)
        server.close()
        Path(path).unlink(missing_ok=True)
        if Path(path).parent.name.startswith(_PREFIX):  # start()'s own folder (a killed run calls no stop())
            shutil.rmtree(Path(path).parent, ignore_errors=True)


def _accept(server: socket.socket, jobs: dict, main) -> None:
    conn, _ = server.accept()
    try:
        conn.settimeout(30)
        head, fds, _, _ = socket.recv_fds(conn, _HEADER.size, 3)
        request = json.loads(_recv_exact(conn, _HEADER.unpack(head)[0]))
        conn.settimeout(None)
    except (OSError, ValueError, struct.error):
        conn.close()
        return
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    pid = os.fork()
    if pid == 0:
        server.close()
        for other in jobs:
            other.close()
        conn.close()
        _run_child(main, request, fds)
    for fd in fds:
        os.close(fd)
    try:
        conn.sendall(_ACCEPTED)
    except OSError:
        _kill(pid)
    jobs[conn] = pid


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _reap(jobs: dict) -> None:
    for conn, pid in list(jobs.items()):
        done, status = os.waitpid(pid, os.WNOHANG)
        if not done:
            continue
        try:
            conn.sendall(_STATUS.pack(_exit_status(status)))
        except OSError:
            pass
        conn.close()
        del jobs[conn]


def remove_stale(folder: str | None = None) -> list[Path]:
    """Remove the socket folders of servers killed with their run (SIGKILL leaves them): a socket nothing listens on.
    A folder without a socket yet may be a server still importing, and is kept."""
    removed = []
    for sock in Path(folder or tempfile.gettempdir()).glob(f"{_PREFIX}*/socket"):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(sock))
        except ConnectionRefusedError:
            shutil.rmtree(sock.parent, ignore_errors=True)
            removed.append(sock.parent)
        except OSError:
            pass
        finally:
            probe.close()
    return removed


def start(log: Path) -> tuple[object, str]:
    """Start a server for this (Snakemake) process; returns its Popen and socket path. Jobs find it through
    ``MENDREPRO_FORK_SERVER``, which the caller sets once the server is started."""
    import subprocess

    remove_stale()
    path = os.path.join(tempfile.mkdtemp(prefix=_PREFIX), "socket")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mendrepro.forkserver", path, str(os.getpid())],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    return proc, path


def stop(proc, path: str) -> None:
    """Stop a server started by :func:`start` and remove its socket's folder."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except Exception:
        proc.kill()
    shutil.rmtree(Path(path).parent, ignore_errors=True)  # the server removes it itself unless it had to be killed


if __name__ == "__main__":
    from mendrepro.numerics import pin_cpu_numerics

    pin_cpu_numerics()  # before the server imports torch: its forked jobs inherit it (mendrepro.numerics)
    serve(sys.argv[1], int(sys.argv[2]))
