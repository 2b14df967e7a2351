"""The SSH front end: paramiko servers on 127.0.0.1 speaking to emulated switches.

One listening socket per switch, all watched by a single acceptor thread (``selectors``).
Each accepted connection gets a thread that runs the paramiko ``Transport`` handshake and
then the shell (``invoke_shell``, what netmiko uses) or a single exec request. Password
authentication only. Lines are echoed like a terminal (not at a password prompt), output
uses ``\\r\\n`` line ends, and the prompt follows every answer.

Faults are read from the switch's :class:`~fabricsim.ssh.device.SwitchFaults` around every
line: a hang stops answering (not even the SSH banner of a new connection) until it ends, a
``close_on`` line drops the connection, garbage and rejections are answered by the session.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import paramiko
from paramiko.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)

from .device import CliSession, EmulatedSwitch

log = logging.getLogger("fabricsim.ssh")
logging.getLogger("fabricsim.ssh.transport").setLevel(logging.CRITICAL)

_POLL_S = 0.05


class _Iface(paramiko.ServerInterface):
    """Authentication and channel policy for one connection."""

    def __init__(self, switch: EmulatedSwitch) -> None:
        self.switch = switch
        self._cond = threading.Condition()
        self._requests: dict[int, str | None] = {}  # channel id -> exec command (None: shell)

    def wait_request(self, chan: paramiko.Channel, timeout: float) -> tuple[bool, str | None]:
        """(requested, exec command or None for a shell) of a newly opened channel."""
        with self._cond:
            self._cond.wait_for(lambda: chan.get_id() in self._requests, timeout)
            if chan.get_id() not in self._requests:
                return False, None
            return True, self._requests.pop(chan.get_id())

    def _request(self, channel: paramiko.Channel, command: str | None) -> bool:
        with self._cond:
            self._requests[channel.get_id()] = command
            self._cond.notify_all()
        return True

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        sw = self.switch
        if sw.faults.auth:
            return AUTH_FAILED
        ok_user = hmac.compare_digest(username.encode(), sw.username.encode())
        ok_pw = hmac.compare_digest(password.encode(), sw.password.encode())
        return AUTH_SUCCESSFUL if ok_user and ok_pw else AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return OPEN_SUCCEEDED
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_pty_request(self, channel: paramiko.Channel, term: bytes, width: int,
                                  height: int, pixelwidth: int, pixelheight: int,
                                  modes: bytes) -> bool:
        return True

    def check_channel_window_change_request(self, channel: paramiko.Channel, width: int,
                                            height: int, pixelwidth: int,
                                            pixelheight: int) -> bool:
        return True

    def check_channel_env_request(self, channel: paramiko.Channel, name: bytes,
                                  value: bytes) -> bool:
        return True

    def check_channel_shell_request(self, channel: paramiko.Channel) -> bool:
        return self._request(channel, None)

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        return self._request(channel, command.decode("utf-8", "replace"))


@dataclass
class _Listener:
    switch: EmulatedSwitch
    host: str
    port: int
    sock: socket.socket | None = None
    conns: set[paramiko.Transport] = field(default_factory=set)


class SshServer:
    """Virtual switches' SSH endpoints, one port per switch, in one process."""

    def __init__(self, host_key: paramiko.PKey, *, handshake_timeout_s: float = 30.0) -> None:
        self.host_key = host_key
        self.handshake_timeout_s = handshake_timeout_s
        self._listeners: dict[str, _Listener] = {}
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._pending: list[Callable[[], None]] = []
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._stopping = threading.Event()
        self._sid = 0
        self._thread = threading.Thread(target=self._accept_loop, name="ssh-accept", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- listeners
    def add(self, switch: EmulatedSwitch, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen for ``switch`` on ``host:port`` (0 = any free port); returns the port."""
        listener = _Listener(switch, host, port)
        self._listeners[switch.name] = listener
        self._bind(listener)
        return listener.port

    def port_of(self, name: str) -> int:
        return self._listeners[name].port

    def _bind(self, listener: _Listener) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((listener.host, listener.port))
        sock.listen(64)
        sock.setblocking(False)
        listener.port = sock.getsockname()[1]
        listener.sock = sock
        def register() -> None:
            self._selector.register(sock, selectors.EVENT_READ, listener)

        self._call(register)

    def close_port(self, name: str) -> None:
        """The switch becomes unreachable: its port refuses connections, sessions drop."""
        listener = self._listeners[name]
        sock, listener.sock = listener.sock, None
        if sock is not None:
            done = threading.Event()

            def unregister() -> None:
                try:
                    self._selector.unregister(sock)
                finally:
                    sock.close()
                    done.set()

            self._call(unregister)
            done.wait(2)
        self.drop_connections(name)

    def open_port(self, name: str) -> None:
        listener = self._listeners[name]
        if listener.sock is None:
            self._bind(listener)

    def drop_connections(self, name: str) -> None:
        listener = self._listeners[name]
        with self._lock:
            conns = list(listener.conns)
        for t in conns:
            t.close()

    def _call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the acceptor thread (selectors are not thread-safe)."""
        if threading.current_thread() is self._thread:
            fn()
            return
        with self._lock:
            self._pending.append(fn)
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            for key, _ in self._selector.select(timeout=0.5):
                if key.data is None:
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(4096)
                    continue
                listener: _Listener = key.data
                if listener.sock is None:
                    continue
                try:
                    conn, _addr = listener.sock.accept()
                except OSError:
                    continue
                conn.setblocking(True)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                threading.Thread(target=self._serve, args=(listener, conn),
                                 name=f"ssh-{listener.switch.name}", daemon=True).start()
            with self._lock:
                pending, self._pending = self._pending, []
            for fn in pending:
                try:
                    fn()
                except Exception:  # a bad listener must not stop the acceptor
                    log.exception("listener update failed")

    def stop(self) -> None:
        self._stopping.set()
        for name in list(self._listeners):
            listener = self._listeners[name]
            if listener.sock is not None:
                listener.sock.close()
                listener.sock = None
            self.drop_connections(name)
        self._wake_w.send(b"x")
        self._thread.join(timeout=5)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    # ---------------------------------------------------------------- connections
    def _serve(self, listener: _Listener, conn: socket.socket) -> None:
        switch = listener.switch
        # A hung switch answers nothing, not even the SSH banner.
        while switch.faults.hung() and not self._stopping.is_set():
            time.sleep(_POLL_S)
        transport = paramiko.Transport(conn)
        # Clients that vanish are routine here; keep paramiko's server-side noise out of logs.
        transport.set_log_channel("fabricsim.ssh.transport")
        transport.local_version = getattr(switch, "ssh_version", "SSH-2.0-fabricsim")
        transport.add_server_key(self.host_key)
        iface = _Iface(switch)
        with self._lock:
            listener.conns.add(transport)
        try:
            try:
                transport.start_server(server=iface)
            except (paramiko.SSHException, EOFError, OSError):
                return
            # Channels one after the other: exec requests (several per connection, like
            # `ssh sw cmd`) or one interactive shell, which ends the connection.
            idle_since = time.monotonic()
            while transport.is_active() and not self._stopping.is_set():
                chan = transport.accept(1.0)
                if chan is None:
                    if time.monotonic() - idle_since > self.handshake_timeout_s:
                        return
                    continue
                requested, command = iface.wait_request(chan, self.handshake_timeout_s)
                if not requested:
                    chan.close()
                    continue
                with self._lock:
                    self._sid += 1
                    sid = self._sid
                if command is None:
                    self._shell(switch, sid, chan, transport)
                    self._goodbye(chan, transport)
                    return
                self._exec(switch, sid, chan, command)
                idle_since = time.monotonic()
        except (paramiko.SSHException, EOFError, OSError):
            pass  # the client went away
        except Exception:
            log.exception("session on %s failed", switch.name)
        finally:
            with self._lock:
                listener.conns.discard(transport)
            transport.close()

    def _goodbye(self, chan: paramiko.Channel, transport: paramiko.Transport) -> None:
        """End a session like sshd: exit status, channel close, then let the client hang up
        first (closing under its feet makes it log a connection reset)."""
        if transport.is_active() and not chan.closed:
            try:
                chan.send_exit_status(0)
                chan.close()
            except (OSError, EOFError, paramiko.SSHException):
                return
        deadline = time.monotonic() + 1.0
        while transport.is_active() and time.monotonic() < deadline and \
                not self._stopping.is_set():
            time.sleep(_POLL_S)

    @staticmethod
    def _send(chan: paramiko.Channel, text: str) -> None:
        chan.sendall(text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8"))

    def _exec(self, switch: EmulatedSwitch, sid: int, chan: paramiko.Channel, command: str) -> None:
        session = switch.new_session(sid, exec_mode=True)
        session.record(command)
        if not self._fault_gate(switch, chan, command):
            return
        reply = session.handle(command)
        if reply.output:
            self._send(chan, reply.output.rstrip("\n") + "\n")
        status = 1 if any(reply.output.lstrip().startswith(p) for p in
                          ("Error", "Usage", "-bash", "%", "Exception")) else 0
        chan.send_exit_status(status)
        chan.close()

    def _shell(self, switch: EmulatedSwitch, sid: int, chan: paramiko.Channel,
               transport: paramiko.Transport) -> None:
        session = switch.new_session(sid)
        chan.settimeout(0.5)
        self._send(chan, session.banner() + session.prompt())
        buf: list[str] = []
        last_cr = False
        decoder = _Utf8()
        while transport.is_active() and not chan.closed:
            try:
                data = chan.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            for ch in decoder.feed(data):
                if ch == "\n" and last_cr:
                    last_cr = False
                    continue
                last_cr = ch == "\r"
                if ch in "\r\n":
                    line = "".join(buf)
                    buf.clear()
                    if not self._line(switch, session, chan, line):
                        return
                elif ch == "\x03":  # Ctrl-C drops the line being typed
                    buf.clear()
                    self._send(chan, "^C\n" + session.prompt())
                elif ch in "\x08\x7f":
                    if buf:
                        buf.pop()
                elif ch == "\x1a":  # Ctrl-Z: Comware returns to user view
                    buf.clear()
                    reply = session.handle("return") if switch.nos == "comware" else None
                    self._send(chan, ("\n" if reply is not None else "") + session.prompt())
                else:
                    buf.append(ch)

    def _fault_gate(self, switch: EmulatedSwitch, chan: paramiko.Channel, line: str) -> bool:
        """Apply hang/close faults to a received line; False ends the session."""
        faults = switch.faults
        with switch.lock:
            if faults.close_on is not None and faults.close_on.search(line):
                faults.close_on = None
                chan.get_transport().close()
                return False
            if faults.hang_on is not None and faults.hang_on.search(line):
                faults.hang_on = None
                faults.hang_until = time.monotonic() + faults.hang_s
        while switch.faults.hung():  # clear() replaces the faults object
            if _gone(chan) or self._stopping.is_set():
                return False  # the line is lost with the session
            time.sleep(_POLL_S)
        return not _gone(chan)

    def _line(self, switch: EmulatedSwitch, session: CliSession, chan: paramiko.Channel,
              line: str) -> bool:
        echo = session.echo
        session.record(line)
        if not self._fault_gate(switch, chan, line):
            return False
        reply = session.handle(line)
        out = (line if echo else "") + "\n"
        if reply.output:
            out += reply.output.rstrip("\n") + "\n"
        if reply.close:
            self._send(chan, out)
            return False
        self._send(chan, out + session.prompt())
        return True


def _gone(chan: paramiko.Channel) -> bool:
    transport = chan.get_transport()
    return chan.closed or transport is None or not transport.is_active()


class _Utf8:
    """Incremental UTF-8 decoding of the byte stream (a character may span two reads)."""

    def __init__(self) -> None:
        import codecs

        self._dec = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, data: bytes) -> str:
        return str(self._dec.decode(data))


_HOST_KEY: paramiko.PKey | None = None


def host_key() -> paramiko.PKey:
    """One ECDSA host key per process (generating it is cheap; sharing it keeps labs fast)."""
    global _HOST_KEY
    if _HOST_KEY is None:
        _HOST_KEY = paramiko.ECDSAKey.generate()
    return _HOST_KEY
