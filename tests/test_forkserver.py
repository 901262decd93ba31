"""The fork server of local runs (mendrepro.forkserver): a forked job behaves as the job's own process would (its
streams, directory, environment, exit status, files), dies with the job's process, and never serves what must run
in a process of its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from mendrepro import forkserver

ROOT = Path(__file__).resolve().parents[1]

# A stand-in for the CLI's main, so the protocol is tested without importing torch: it reports what the job's
# process would see, or sleeps after writing its pid.
FAKE_SERVER = textwrap.dedent(
    """
    import json, os, sys, time
    from mendrepro import forkserver

    def main(argv):
        if argv[-1] == "sleep":
            open(argv[-2], "w").write(str(os.getpid()))
            time.sleep(120)
        if argv[-1] == "exit-text":
            sys.exit("a one-line error")
        if argv[-1] == "none":
            return None
        if argv[-1] == "raise":
            raise ValueError("boom")
        print(json.dumps({"argv": argv, "cwd": os.getcwd(), "x": os.environ.get("X"),
                          "server_env": os.environ.get(forkserver.ENV)}))
        print("to stderr", file=sys.stderr)
        return 3

    forkserver.serve(sys.argv[1], int(sys.argv[2]), main)
    """
)


def _wait_for(path: Path, seconds: float = 60) -> None:
    end = time.time() + seconds
    while not path.exists():
        assert time.time() < end, f"{path} did not appear"
        time.sleep(0.05)


@pytest.fixture
def fake_server(tmp_path):
    sock = tmp_path / "s"
    proc = subprocess.Popen([sys.executable, "-c", FAKE_SERVER, str(sock), str(os.getpid())])
    _wait_for(sock)
    yield sock, proc
    proc.terminate()
    proc.wait(timeout=10)


def _client(sock: Path, argv: list[str], cwd: Path, **env) -> subprocess.Popen:
    code = f"import sys; from mendrepro.forkserver import forward; sys.exit(forward({argv!r}))"
    full_env = {**os.environ, forkserver.ENV: str(sock), **env}
    full_env.pop("SLURM_JOB_ID", None)
    return subprocess.Popen(
        [sys.executable, "-c", code], cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_a_forked_job_has_the_jobs_streams_directory_environment_and_status(fake_server, tmp_path):
    sock, _ = fake_server
    work = tmp_path / "job"
    work.mkdir()
    out, err = _client(sock, ["--threads", "1", "train", "--exp", "{}"], work, X="job's value").communicate(timeout=60)
    seen = json.loads(out)
    assert seen == {
        "argv": ["--threads", "1", "train", "--exp", "{}"],
        "cwd": str(work),
        "x": "job's value",
        "server_env": None,
    }
    assert err == "to stderr\n"
    proc = _client(sock, ["train"], work)
    proc.communicate(timeout=60)
    assert proc.returncode == 3


@pytest.mark.parametrize(
    ("last", "status", "stderr"),
    [("exit-text", 1, "a one-line error"), ("raise", 1, "ValueError: boom"), ("none", 0, "")],
)
def test_a_job_exits_as_its_own_process_would(fake_server, tmp_path, last, status, stderr):
    sock, _ = fake_server
    proc = _client(sock, ["evaluate", last], tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status and stderr in err


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead: the server reaps it within half a second.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[1].startswith("Z"))


def test_killing_the_jobs_process_kills_the_forked_job(fake_server, tmp_path):
    sock, server = fake_server
    pid_file = tmp_path / "child.pid"
    client = _client(sock, ["train", str(pid_file), "sleep"], tmp_path)
    _wait_for(pid_file)
    time.sleep(0.1)
    child = int(pid_file.read_text())
    assert child not in (client.pid, server.pid) and _alive(child)
    client.send_signal(signal.SIGKILL)
    client.wait(timeout=10)
    end = time.time() + 10
    while _alive(child):
        assert time.time() < end, "the forked job outlived the job's process"
        time.sleep(0.05)
    assert server.poll() is None  # the server goes on serving


def test_the_server_stops_with_the_run_that_started_it(tmp_path):
    sock = tmp_path / "s"
    # The server's parent (the run) is a shell that exits once the socket is there.
    shell = subprocess.Popen(
        ["bash", "-c", f'{sys.executable} -c "$0" {sock} $$ & while [ ! -S {sock} ]; do sleep 0.05; done', FAKE_SERVER]
    )
    shell.wait(timeout=60)
    end = time.time() + 10
    while sock.exists():
        assert time.time() < end, "the server outlived its run"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["train"], {"SLURM_JOB_ID": "7"}),  # a cluster job runs where the scheduler put it
        (["table4", "--out", "x"], {}),  # the report's commands need no torch
        (["memory-probe", "--size", "bert-base"], {}),  # peak memory is measured in a process of its own
        (["edit", "--run", "x"], {}),  # a person's command
        (["fetch-model"], {}),
    ],
)
def test_what_the_server_does_not_serve_runs_in_the_jobs_process(monkeypatch, tmp_path, argv, env):
    monkeypatch.setenv(forkserver.ENV, str(tmp_path / "no-server-needed"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert forkserver.forward(argv) is None


def test_without_a_server_the_job_runs_in_its_own_process(monkeypatch, tmp_path):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv(forkserver.ENV, raising=False)
    assert forkserver.forward(["train"]) is None
    monkeypatch.setenv(forkserver.ENV, str(tmp_path / "gone"))  # a server that is not (or no longer) there
    assert forkserver.forward(["train"]) is None


def test_the_real_cli_forked_writes_what_a_plain_process_writes(tmp_path):
    """`python -m mendrepro world` through the server (the CLI imported once) and in its own process: the same
    bytes, and a bad argument is the same one line and status."""
    world = json.dumps(yaml.safe_load((ROOT / "tests/fixtures/micro.yaml").read_text())["world"])
    proc, sock = forkserver.start(tmp_path / "server.log")
    try:
        _wait_for(Path(sock))
        runs = {}
        for how, env in (("forked", {forkserver.ENV: sock}), ("plain", {})):
            out = tmp_path / how
            full_env = {k: v for k, v in os.environ.items() if k not in (forkserver.ENV, "SLURM_JOB_ID")} | env
            cmd = [
                sys.executable,
                "-m",
                "mendrepro",
                "world",
                "--world",
                world,
                "--out",
                str(out / "world"),
                "--tokenizer",
                str(out / "tokenizer.json"),
            ]
            done = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            bad = subprocess.run([*cmd[:4], "{not json", *cmd[5:]], env=full_env, capture_output=True, text=True)
            runs[how] = (
                {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()},
                bad.returncode,
                bad.stderr.strip().splitlines()[-1],
            )
        assert runs["forked"] == runs["plain"] and len(runs["plain"][0]) > 5
    finally:
        forkserver.stop(proc, sock)
    assert not Path(sock).parent.exists()


def test_a_killed_servers_socket_folder_is_removed_and_a_live_ones_kept(fake_server, tmp_path):
    """SIGKILL of a run's process group leaves the server's socket folder; the next start removes it, not a live
    server's, nor a folder whose server is still importing (no socket yet)."""
    import socket

    live_sock, _ = fake_server
    dead, live, starting = (tmp_path / f"{forkserver._PREFIX}{name}" for name in ("dead", "live", "starting"))
    for folder in (dead, live, starting):
        folder.mkdir()
    left = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    left.bind(str(dead / "socket"))  # bound, never listening again: what a killed server leaves
    left.close()
    (live / "socket").symlink_to(live_sock)
    assert forkserver.remove_stale(str(tmp_path)) == [dead]
    assert not dead.exists() and live.exists() and starting.exists()
