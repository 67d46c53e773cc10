"""Start, health-check, report and stop the local stack.

Each process runs in its own session (process group) and carries a ``RISKPIPE_STACK``
marker in its environment, so ``down`` can stop the whole group and then sweep any
descendant that escaped into a new session (Airflow's standalone does). State lives in
``<data_dir>/run/<service>.json``; logs in ``<data_dir>/logs/<service>.log``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from riskpipe.errors import UsageError
from riskpipe.settings import Settings
from riskpipe.stack import services
from riskpipe.stack.service import Service, ServiceState

log = logging.getLogger("riskpipe.stack")
STACK_MARKER = "RISKPIPE_STACK"

Report = Callable[[str], None]


class StackError(RuntimeError):
    """A service did not come up healthy; the message carries its last log lines and a hint."""


@dataclass
class ServiceStatus:
    name: str
    kind: str  # "process" | "setup"
    pid: int | None
    address: str
    running: bool
    healthy: bool
    uptime_s: float | None
    credentials: str | None = None
    progress: str | None = None


def log_path(settings: Settings, name: str) -> Path:
    return settings.log_dir / f"{name}.log"


def _stack_id(settings: Settings) -> str:
    """One stack per data dir: the marker value that ``down`` sweeps by."""
    return str(settings.data_dir)


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_healthy(service: Service, settings: Settings, proc: subprocess.Popen | None) -> bool:
    deadline = time.monotonic() + service.start_timeout_s
    while time.monotonic() < deadline:
        if service.health(settings):
            return True
        if proc is not None and proc.poll() is not None:
            return False  # exited: no point waiting out the timeout
        time.sleep(0.25)
    return service.health(settings)


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log written)"


def _start_process(service: Service, settings: Settings) -> subprocess.Popen:
    assert service.command is not None
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **settings.to_env(), **service.env(settings), STACK_MARKER: _stack_id(settings)}
    logfile = log_path(settings, service.name).open("ab")
    logfile.write(f"\n--- riskpipe: starting {service.name} at {time.strftime('%Y-%m-%dT%H:%M:%S')} ---\n".encode())
    logfile.flush()
    try:
        return subprocess.Popen(
            service.command(settings), stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=settings.data_dir, start_new_session=True,
        )
    finally:
        logfile.close()


def _await_healthy(service: Service, settings: Settings, proc: subprocess.Popen | None, started: float,
                   report: Report) -> None:
    """Wait for one service's health check; StackError with its last log lines and hint if it fails."""
    if not _wait_healthy(service, settings, proc):
        exited = proc is not None and proc.poll() is not None
        why = f"exited with code {proc.returncode}" if exited and proc else (
            f"not healthy after {service.start_timeout_s:.0f}s")
        raise StackError(
            f"{service.name} {why}.\n--- last lines of {log_path(settings, service.name)} ---\n"
            f"{tail(log_path(settings, service.name))}\n---\nhint: {service.hint} "
            f"See `riskpipe logs {service.name}`; `riskpipe down` stops what started."
        )
    verb = "healthy at" if service.is_process else "done:"
    report(f"{service.name}: {verb} {service.address(settings)} ({time.monotonic() - started:.1f}s)")


def up(settings: Settings, names: list[str] | None = None, report: Report = print) -> list[ServiceStatus]:
    """Bring the services (default: all) to healthy, in dependency order; idempotent.

    A started process is only waited for when a later service depends on it (or at the end), so
    slow starters (Airflow: 30-120 s) start up alongside the services that do not need them.
    Raises StackError at the first service that fails its health check, leaving the services
    started before it running so the user can inspect them.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        plan = services.ordered(settings, names)
    except KeyError as exc:
        raise UsageError(f"unknown service {exc.args[0]!r}; known: {', '.join(services.REGISTRY)}") from exc
    starting: dict[str, tuple[Service, subprocess.Popen | None, float]] = {}
    for service in plan:
        for dep in [d for d in service.depends_on if d in starting]:
            waiting, proc, began = starting.pop(dep)
            _await_healthy(waiting, settings, proc, began, report)
        started = time.monotonic()
        state = ServiceState.load(settings.run_dir, service.name)
        if service.is_process and state and _alive(state.pid):
            if service.health(settings):
                report(f"{service.name}: already running (pid {state.pid}, {state.address})")
                continue
            report(f"{service.name}: running (pid {state.pid}) but not healthy yet, waiting")
            starting[service.name] = (service, None, started)
        elif service.is_process:
            report(f"{service.name}: starting ({service.description})")
            try:
                proc = _start_process(service, settings)
            except FileNotFoundError as exc:
                raise StackError(f"{service.name}: {exc}") from exc
            ServiceState(service.name, proc.pid, time.time(), service.address(settings),
                         service.command(settings) if service.command else []).save(settings.run_dir)
            starting[service.name] = (service, proc, started)
        else:
            if service.health(settings):
                report(f"{service.name}: ready ({service.address(settings)})")
                if state is None:
                    ServiceState(service.name, None, time.time(), service.address(settings)).save(settings.run_dir)
                continue
            report(f"{service.name}: setting up ({service.description})")
            try:
                assert service.setup is not None
                service.setup(settings)
            except Exception as exc:
                raise StackError(f"{service.name}: setup failed: {exc}\nhint: {service.hint}") from exc
            ServiceState(service.name, None, time.time(), service.address(settings)).save(settings.run_dir)
            _await_healthy(service, settings, None, started, report)
    for waiting, proc, began in starting.values():
        _await_healthy(waiting, settings, proc, began, report)
    return status(settings)


def stack_processes(settings: Settings) -> list[psutil.Process]:
    """Every live process carrying this stack's marker, including ones that left their group."""
    found = []
    marker = _stack_id(settings)
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get(STACK_MARKER) == marker:
                found.append(proc)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def _group_members(pgid: int) -> list[psutil.Process]:
    """Processes of a process group, collected before signalling so we can wait for each to exit."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid:
                members.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def down(settings: Settings, report: Report = print) -> int:
    """Stop every service in reverse order by process group, then sweep stragglers. Returns processes stopped."""
    stopped = 0
    for service in reversed(list(services.REGISTRY.values())):
        state = ServiceState.load(settings.run_dir, service.name)
        if state is None:
            continue
        if state.pid is not None and _alive(state.pid):
            report(f"{service.name}: stopping (pid {state.pid})")
            members = _group_members(state.pid)
            _signal_group(state.pid, signal.SIGTERM)
            _, alive = psutil.wait_procs(members, timeout=service.stop_timeout_s)
            if alive:  # children that ignore SIGTERM (Airflow standalone's do)
                _signal_group(state.pid, signal.SIGKILL)
                psutil.wait_procs(alive, timeout=5)
            stopped += 1
        state.forget(settings.run_dir)
    leftovers = stack_processes(settings)
    for proc in leftovers:
        report(f"sweeping leftover process {proc.pid} ({' '.join(proc.cmdline()[:3])})")
        proc.kill()
    psutil.wait_procs(leftovers, timeout=5)
    report("stack stopped" if stopped or leftovers else "nothing was running")
    return stopped + len(leftovers)


def status(settings: Settings) -> list[ServiceStatus]:
    """What runs, where, since when, and whether it answers its health check."""
    rows = []
    for service in services.ordered(settings):
        state = ServiceState.load(settings.run_dir, service.name)
        running = state is not None and (_alive(state.pid) if service.is_process else True)
        healthy = running and service.health(settings)
        rows.append(ServiceStatus(
            name=service.name,
            kind="process" if service.is_process else "setup",
            pid=state.pid if state and running else None,
            address=service.address(settings),
            running=running,
            healthy=healthy,
            uptime_s=state.uptime_s if state and running else None,
            credentials=service.credentials(settings) if service.credentials and running else None,
            progress=service.progress(settings) if service.progress and running else None,
        ))
    return rows


def logs(settings: Settings, name: str, lines: int = 50, follow: bool = False) -> None:
    """Print the last lines of a service's log; with follow, keep printing as it grows."""
    if name not in services.REGISTRY:
        raise UsageError(f"unknown service {name!r}; known: {', '.join(services.REGISTRY)}")
    path = log_path(settings, name)
    if not path.exists():
        raise UsageError(f"no log for {name!r} yet ({path}); has `riskpipe up` started it?")
    print(tail(path, lines))
    if follow:
        with path.open(errors="replace") as fh:
            fh.seek(0, os.SEEK_END)
            try:
                while True:
                    line = fh.readline()
                    if line:
                        print(line, end="")
                    else:
                        time.sleep(0.2)
            except KeyboardInterrupt:
                return
