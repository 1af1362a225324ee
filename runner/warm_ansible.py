"""routeplane's warm Ansible: import ansible-playbook's CLI once, fork a child per run.

Started by the Node service (src/runs/warm/warm-process.ts) with the interpreter named by
ansible-playbook's shebang and the environment every run shares. Protocol, JSON lines:

  stdin   {"op": "run", "id": N, "argv": [...], "cwd": DIR, "out": SOCK, "err": SOCK}
  stdout  {"ev": "ready", "python": ..., "ansible": ...}
          {"ev": "started", "id": N, "pid": P}   the child is connected to both sockets
          {"ev": "exited", "id": N, "code": C, "signal": S}
          {"ev": "refused", "id": N, "error": ...}

A child is what `ansible-playbook ARGV` would be, run in DIR with its stdout and stderr on the
unix sockets the service listens on. End of stdin: the parent kills its children's groups and
leaves.

Why a fork per run: Ansible keeps per-invocation state in module globals (GlobalCLIArgs is a
singleton that refuses a second set of arguments, the plugin loaders remember paths a playbook
added), so a child must start from the parent's pristine, just-imported state each time.
"""

import ctypes
import json
import os
import selectors
import signal
import socket
import sys
import traceback

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
# A child that could not get as far as running the playbook: the service reports the reason.
EXIT_SETUP_FAILED = 70

libc = ctypes.CDLL(None, use_errno=True)
control_fd = -1


def emit(message):
    data = (json.dumps(message) + "\n").encode()
    while data:
        data = data[os.write(control_fd, data):]


def preload():
    """Imports what every run needs, so a child starts with it already in memory."""
    # ansible.cli must come first: it sets up the locale and checks the standard streams.
    from ansible.cli.playbook import PlaybookCLI  # noqa: F401
    import ansible.executor.playbook_executor  # noqa: F401
    import ansible.executor.task_queue_manager  # noqa: F401
    import ansible.executor.task_executor  # noqa: F401
    import ansible.executor.process.worker  # noqa: F401
    import ansible.executor.module_common  # noqa: F401
    import ansible.inventory.manager  # noqa: F401
    import ansible.vars.manager  # noqa: F401
    import ansible.template  # noqa: F401
    import ansible.plugins.strategy.linear  # noqa: F401
    import ansible.plugins.strategy.free  # noqa: F401
    import ansible.plugins.connection.ssh  # noqa: F401
    import ansible.plugins.connection.local  # noqa: F401
    import ansible.plugins.action.normal  # noqa: F401
    import ansible.plugins.action.command  # noqa: F401
    import ansible.plugins.shell.sh  # noqa: F401
    import ansible.plugins.inventory.yaml  # noqa: F401
    import ansible.plugins.inventory.ini  # noqa: F401
    import ansible.plugins.inventory.host_list  # noqa: F401
    import ansible.plugins.vars.host_group_vars  # noqa: F401
    import ansible.plugins.filter.core  # noqa: F401
    import ansible.plugins.test.core  # noqa: F401
    from ansible.release import __version__

    warm_plugins()
    return __version__


def warm_plugins():
    """Loads the plugins every run loads, and their configuration definitions.

    Each run would otherwise import them and parse each one's DOCUMENTATION YAML for its
    settings. Both land in process-wide caches (sys.modules, C.config) that a fork inherits
    and a run's own plugin directories add to, never replace: what a run loads is the same.
    """
    from ansible.plugins import loader

    for name in ("callback_loader", "connection_loader", "shell_loader", "become_loader",
                 "vars_loader", "filter_loader", "test_loader", "strategy_loader",
                 "inventory_loader", "cache_loader"):
        try:
            list(getattr(loader, name).all(class_only=True))
        except Exception:  # noqa: BLE001 - a plugin that fails to load here fails in the run
            pass
    for get in (
        lambda: loader.callback_loader.get("ansible.posix.jsonl", class_only=True),
        lambda: loader.action_loader.get("ansible.builtin.normal", class_only=True),
        lambda: loader.action_loader.get("ansible.builtin.command", class_only=True),
        # Runs `ssh -o ControlPersist` once to see whether ssh supports it; cached per process.
        lambda: __import__("ansible.utils.ssh_functions", fromlist=["x"]).set_default_transport(),
    ):
        try:
            get()
        except Exception:  # noqa: BLE001
            pass


def run_child(request, parent, started_w):
    """In the forked child: become ansible-playbook. Never returns."""
    code = EXIT_SETUP_FAILED
    try:
        # Its own session and group: cancel and timeout signal the whole group, and the
        # service's terminal signals never reach it by accident.
        os.setsid()
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(EXIT_SETUP_FAILED)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        # ansible-playbook turns SIGINT into a clean stop of its workers.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.close(control_fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        for target, path in ((1, request["out"]), (2, request["err"])):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
            os.dup2(sock.fileno(), target)
            sock.close()
        os.write(started_w, b"1")
        os.close(started_w)
        os.chdir(request["cwd"])
        argv = [str(a) for a in request["argv"]]
        sys.argv = argv
        from ansible.cli.playbook import PlaybookCLI

        try:
            PlaybookCLI.cli_executor(argv)
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:  # noqa: B036 - whatever happens, the child must leave by _exit
        try:
            traceback.print_exc()
        except BaseException:  # noqa: B036
            pass
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:  # noqa: B036
            pass
        # Never a normal exit: the atexit handlers inherited from the parent would delete the
        # parent's local temp dir (Ansible registers its removal at import).
        os._exit(code)


def main():
    global control_fd
    parent = os.getpid()
    # Leave with the service that started us.
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:
        return 1
    # Our own copy of the control channel: a child's fd 1 becomes its run's stdout.
    control_fd = os.dup(1)
    version = preload()
    # Orphans of a run (workers, a detached ssh master) are reparented here and reaped below,
    # so none lingers as a zombie.
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def leave(*_):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, leave)

    running = {}  # pid -> run id
    started_pipes = {}  # read end -> (pid, run id)
    sel = selectors.DefaultSelector()
    sel.register(0, selectors.EVENT_READ, "control")
    sel.register(wake_r, selectors.EVENT_READ, "wake")
    emit({"ev": "ready", "python": sys.version.split()[0], "ansible": version})

    def report_started(fd):
        ok = os.read(fd, 1) == b"1"
        sel.unregister(fd)
        os.close(fd)
        pid, run_id = started_pipes.pop(fd)
        if ok:
            emit({"ev": "started", "id": run_id, "pid": pid})

    def reap():
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            run_id = running.pop(pid, None)
            if run_id is None:
                continue
            # "started" always comes before "exited", even when both arrive in one select.
            for fd, (owner, _) in list(started_pipes.items()):
                if owner == pid:
                    report_started(fd)
            emit(
                {
                    "ev": "exited",
                    "id": run_id,
                    "pid": pid,
                    "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                    "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                }
            )

    def start(request):
        started_r, started_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(started_r)
            run_child(request, parent, started_w)
        os.close(started_w)
        running[pid] = request["id"]
        started_pipes[started_r] = (pid, request["id"])
        sel.register(started_r, selectors.EVENT_READ, "started")

    pending = b""
    try:
        while True:
            for key, _ in sel.select():
                if key.data == "wake":
                    try:
                        while os.read(wake_r, 512):
                            pass
                    except BlockingIOError:
                        pass
                    reap()
                elif key.data == "started":
                    if key.fd in started_pipes:
                        report_started(key.fd)
                else:
                    data = os.read(0, 65536)
                    if not data:
                        return 0
                    pending += data
                    while b"\n" in pending:
                        line, pending = pending.split(b"\n", 1)
                        request = {}
                        try:
                            request = json.loads(line)
                            if request.get("op") != "run":
                                raise ValueError("unknown op")
                            start(request)
                        except Exception as err:  # noqa: BLE001 - a bad request never ends us
                            run_id = request.get("id") if isinstance(request, dict) else None
                            emit({"ev": "refused", "id": run_id, "error": str(err)})
            reap()
    finally:
        for pid in list(running):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass


if __name__ == "__main__":
    sys.exit(main())
