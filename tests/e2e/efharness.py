# SPDX-License-Identifier: MIT
#
# efharness.py - shared pieces of the end-to-end tests: a TAP result
# class for unittest, Python stubs generated at test time from proto/
# with `protoc --python_out`, and a Cluster that starts a real
# eventfold-stored and eventfold-gatewayd (and, on request,
# eventfold-runnerd with the example plugins) in a fresh temporary
# directory, on free ports, and kills them at the end.
#
# Run with /usr/bin/python3 (Debian's, which has grpcio and protobuf).
# Paths come from EF_BUILD_ROOT and EF_SOURCE_ROOT (set by meson).
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import unittest
import urllib.request
import uuid

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("EF_SOURCE_ROOT") or os.path.normpath(
    os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("EF_BUILD_ROOT") or os.path.join(SRC, "build-gw")
STORED = os.path.join(BUILD, "daemons", "stored", "eventfold-stored")
GATEWAYD = os.path.join(BUILD, "daemons", "gatewayd", "eventfold-gatewayd")
RUNNERD = os.path.join(BUILD, "daemons", "runnerd", "eventfold-runnerd")
PLUGINS = os.path.join(BUILD, "examples", "plugins")


def _gen_stubs():
    out = tempfile.mkdtemp(prefix="ef-stubs-")
    atexit.register(shutil.rmtree, out, True)
    subprocess.check_call([
        "protoc", "--python_out=" + out, "-I", os.path.join(SRC, "proto"),
        "eventfold.proto", "health.proto", "runner.proto"])
    sys.path.insert(0, out)
    import eventfold_pb2
    import health_pb2
    import runner_pb2
    return out, eventfold_pb2, health_pb2, runner_pb2


_STUBS, pb, hpb, rpb = _gen_stubs()

SERVING = 1
NOT_SERVING = 2
SERVICE_UNKNOWN = 3


def new_id():
    return str(uuid.uuid4())


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout=20.0, interval=0.05, what="condition"):
    """Polls pred until it returns a true value; fails after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def wait_port(port, timeout=20):
    def up():
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return True
        except OSError:
            return False
    wait_for(up, timeout=timeout, interval=0.01, what="port %d" % port)


def events(n, etype="Tested", payload=b"{}"):
    return [pb.ProposedEvent(event_id=new_id(), event_type=etype,
                             payload=payload) for _ in range(n)]


def any_():
    return pb.ExpectedVersion(any=pb.Empty())


def no_stream():
    return pb.ExpectedVersion(no_stream=pb.Empty())


def exact(n):
    return pb.ExpectedVersion(exact=n)


def rpc_status(fn, *a, **kw):
    """(code, details) of a call that must fail."""
    try:
        fn(*a, **kw)
    except grpc.RpcError as e:
        return e.code(), e.details()
    raise AssertionError("the call succeeded")


class Client:
    """Plain channel calls (no generated service stubs needed)."""

    def __init__(self, channel, metadata=None):
        self.channel = channel
        self.metadata = metadata

        def uu(name, req, resp):
            return channel.unary_unary(
                "/eventfold.EventStore/" + name,
                request_serializer=req.SerializeToString,
                response_deserializer=resp.FromString)

        def us(name, req):
            return channel.unary_stream(
                "/eventfold.EventStore/" + name,
                request_serializer=req.SerializeToString,
                response_deserializer=pb.SubscribeResponse.FromString)

        self._append = uu("Append", pb.AppendRequest, pb.AppendResponse)
        self._read_stream = uu("ReadStream", pb.ReadStreamRequest,
                               pb.ReadStreamResponse)
        self._read_all = uu("ReadAll", pb.ReadAllRequest, pb.ReadAllResponse)
        self._list = uu("ListStreams", pb.ListStreamsRequest,
                        pb.ListStreamsResponse)
        self._sub_all = us("SubscribeAll", pb.SubscribeAllRequest)
        self._sub_stream = us("SubscribeStream", pb.SubscribeStreamRequest)
        self._check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=hpb.HealthCheckRequest.SerializeToString,
            response_deserializer=hpb.HealthCheckResponse.FromString)
        self._watch = channel.unary_stream(
            "/grpc.health.v1.Health/Watch",
            request_serializer=hpb.HealthCheckRequest.SerializeToString,
            response_deserializer=hpb.HealthCheckResponse.FromString)

    def append(self, stream_id, expected, evs, timeout=10):
        return self._append(pb.AppendRequest(
            stream_id=stream_id, expected_version=expected, events=evs),
            timeout=timeout, metadata=self.metadata)

    def append_future(self, stream_id, expected, evs, timeout=60):
        """The append as a grpc future (result() waits for it)."""
        return self._append.future(pb.AppendRequest(
            stream_id=stream_id, expected_version=expected, events=evs),
            timeout=timeout, metadata=self.metadata)

    def append_raw(self, req, timeout=10):
        return self._append(req, timeout=timeout, metadata=self.metadata)

    def read_stream(self, stream_id, from_version=0, max_count=1000,
                    timeout=10):
        return self._read_stream(pb.ReadStreamRequest(
            stream_id=stream_id, from_version=from_version,
            max_count=max_count), timeout=timeout,
            metadata=self.metadata).events

    def read_all(self, from_position=0, max_count=1000, timeout=10):
        return self._read_all(pb.ReadAllRequest(
            from_position=from_position, max_count=max_count),
            timeout=timeout, metadata=self.metadata).events

    def list_streams(self, timeout=10):
        return self._list(pb.ListStreamsRequest(), timeout=timeout,
                          metadata=self.metadata).streams

    def subscribe_all(self, from_position=0, timeout=None):
        return self._sub_all(pb.SubscribeAllRequest(
            from_position=from_position), timeout=timeout,
            metadata=self.metadata)

    def subscribe_stream(self, stream_id, from_version=0, timeout=None):
        return self._sub_stream(pb.SubscribeStreamRequest(
            stream_id=stream_id, from_version=from_version),
            timeout=timeout, metadata=self.metadata)

    def check(self, service="", timeout=5):
        return self._check(hpb.HealthCheckRequest(service=service),
                           timeout=timeout).status

    def watch(self, service="", timeout=None):
        return self._watch(hpb.HealthCheckRequest(service=service),
                           timeout=timeout)

    def runner(self, method, req, resp, timeout=10):
        """One eventfold.Runner call (rpb messages)."""
        call = self.channel.unary_unary(
            "/eventfold.Runner/" + method,
            request_serializer=type(req).SerializeToString,
            response_deserializer=resp.FromString)
        return call(req, timeout=timeout, metadata=self.metadata)

    def raw_unary(self, method, payload, timeout=10):
        """Sends raw bytes (possibly invalid protobuf) to a method."""
        call = self.channel.unary_unary(method)
        return call(payload, timeout=timeout, metadata=self.metadata)


def stop_proc(proc, sig=signal.SIGTERM, timeout=30):
    """Sends sig to proc and waits up to timeout s for it, then kills it;
    the exit code (None if proc is None)."""
    if proc is None:
        return None
    proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def _flag(args, name):
    """The value after flag name in args, or None."""
    args = list(args)
    return args[args.index(name) + 1] if name in args else None


def tcp_url():
    return "tcp://127.0.0.1:%d" % free_port()


def wait_url(url, proc, path, before, name):
    """Until proc logs (in path) that it serves url once more than the
    before times counted at its start. Not by dialling it: a probe that
    hangs up is a rude peer to nng 1.5 (libcommon/listen.h)."""
    def up():
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %s" % (name, proc.returncode))
        return _count(path, "serving " + url) > before
    wait_for(up, what=url)


def _count(path, text):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace").count(text)
    except OSError:
        return 0


class Cluster:
    """A real eventfold-stored and eventfold-gatewayd in a temp dir."""

    def __init__(self, gw_args=(), gw_env=None, start=True):
        self.dir = tempfile.mkdtemp(prefix="ef-e2e-")
        self.data = os.path.join(self.dir, "data")
        self.run = os.path.join(self.dir, "run")
        os.makedirs(self.data)
        os.makedirs(self.run)
        self.conf = os.path.join(self.dir, "empty.conf")
        open(self.conf, "w").close()
        self.port = free_port()
        self.mport = free_port()
        self.addr = "127.0.0.1:%d" % self.port
        self.gw_args = list(gw_args)
        self.gw_env = gw_env
        self.stored = None
        self.gateway = None
        self.runnerd = None
        self.channels = []
        if start:
            self.start_stored()
            self.start_gateway()

    def _log(self, name):
        return open(os.path.join(self.dir, name + ".log"), "ab")

    def start_stored(self, env=None, args=()):
        """env: variables added to this one start; args: extra flags."""
        url = _flag(args, "--store-url")
        path = os.path.join(self.dir, "stored.log")
        before = _count(path, "serving %s" % url)
        self.stored = subprocess.Popen(
            [STORED, "-d", "-f", self.conf, "--data-dir", self.data,
             "--runtime-dir", self.run] + list(args),
            env=dict(os.environ, **(env or {})),
            stdout=self._log("stored"), stderr=subprocess.STDOUT)
        if url is not None:
            wait_url(url, self.stored, path, before, "stored")
            return
        wait_for(lambda: os.path.exists(os.path.join(self.run, "store.sock")),
                 what="store.sock")

    def stop_stored(self, sig=signal.SIGKILL):
        if self.stored is not None:
            self.stored.send_signal(sig)
            self.stored.wait(30)
            self.stored = None

    def start_runnerd(self, env=None, args=()):
        """eventfold-runnerd with the example plugins (todo, ...); env:
        variables added to this one start; args: extra flags."""
        sock = os.path.join(self.run, "runner.sock")
        url = _flag(args, "--runner-url")
        path = os.path.join(self.dir, "runnerd.log")
        before = _count(path, "serving %s" % url)
        self.runnerd = subprocess.Popen(
            [RUNNERD, "-d", "-f", self.conf, "--data-dir", self.data,
             "--runtime-dir", self.run, "--plugin-dir", PLUGINS] +
            list(args), env=dict(os.environ, **(env or {})),
            stdout=self._log("runnerd"), stderr=subprocess.STDOUT)
        if url is not None:
            wait_url(url, self.runnerd, path, before, "runnerd")
            return

        def up():
            if self.runnerd.poll() is not None:
                raise RuntimeError("runnerd exited with %s; log:\n%s" % (
                    self.runnerd.returncode, self.log("runnerd")))
            return os.path.exists(sock)
        wait_for(up, what="runner.sock")

    def stop_runnerd(self, sig=signal.SIGTERM):
        stop_proc(self.runnerd, sig)
        self.runnerd = None

    def start_gateway(self, wait=True):
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("EVENTFOLD_"):
                del env[k]
        if self.gw_env:
            env.update(self.gw_env)
        args = [GATEWAYD, "-d", "-f", self.conf, "--data-dir", self.data,
                "--runtime-dir", self.run, "--listen", self.addr,
                "--metrics-listen", "127.0.0.1:%d" % self.mport,
                "--health-interval-ms", "100",
                "--store-timeout-ms", "3000"] + self.gw_args
        self.gateway = subprocess.Popen(args, env=env,
                                        stdout=self._log("gatewayd"),
                                        stderr=subprocess.STDOUT)
        if wait:
            self.wait_listening()
            self.wait_serving()

    def wait_listening(self, timeout=20):
        """TCP first: a gRPC channel that dials too early backs off."""
        def up():
            if self.gateway.poll() is not None:
                raise RuntimeError("gatewayd exited with %s; log:\n%s" % (
                    self.gateway.returncode, self.log("gatewayd")))
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return True
            except OSError:
                return False
        wait_for(up, timeout=timeout, interval=0.01, what="gRPC port")

    def channel(self, creds=None, options=None):
        opts = [("grpc.max_receive_message_length", 64 << 20),
                ("grpc.max_send_message_length", 64 << 20),
                # daemons come and go in these tests: redial quickly
                ("grpc.initial_reconnect_backoff_ms", 50),
                ("grpc.max_reconnect_backoff_ms", 250),
                # NOT the redial pace: gRPC core takes it as the least
                # time a connection attempt gets to complete its HTTP/2
                # handshake; at 50 ms a loaded machine failed calls with
                # "timed out before receiving SETTINGS frame"
                ("grpc.min_reconnect_backoff_ms", 5000),
                ("grpc.use_local_subchannel_pool", 1)]
        opts += options or []
        if creds is None:
            ch = grpc.insecure_channel(self.addr, options=opts)
        else:
            ch = grpc.secure_channel(self.addr, creds, options=opts)
        self.channels.append(ch)
        return ch

    def channel_to(self, addr):
        saved, self.addr = self.addr, addr
        try:
            return self.channel()
        finally:
            self.addr = saved

    def client(self, creds=None, metadata=None, options=None):
        return Client(self.channel(creds, options), metadata)

    def client_for(self, addr):
        """A client of another gateway (on addr) of this cluster."""
        return Client(self.channel_to(addr))

    def wait_serving(self, client=None, timeout=30):
        c = client or self.client()

        # 5 s a check: on a machine loaded far past its cores (seen at
        # load 20-60 beside parallel builds) the client's own TCP
        # connect missed a 2 s deadline ("tcp handshaker shutdown")
        def ok():
            if self.gateway.poll() is not None:
                raise RuntimeError("gatewayd exited with %s; log:\n%s" % (
                    self.gateway.returncode, self.log("gatewayd")))
            return c.check(timeout=5) == SERVING
        wait_for(ok, timeout=timeout, what="health SERVING")

    def metrics(self):
        url = "http://127.0.0.1:%d/metrics" % self.mport
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()

    def metric(self, name):
        for line in self.metrics().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        raise KeyError(name)

    def log(self, name):
        try:
            with open(os.path.join(self.dir, name + ".log"), "rb") as f:
                return f.read().decode(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop_gateway(self, sig=signal.SIGTERM, timeout=30):
        rc = stop_proc(self.gateway, sig, timeout)
        self.gateway = None
        return rc

    def close(self):
        for ch in self.channels:
            ch.close()
        self.channels = []
        for p in (self.gateway, self.runnerd, self.stored):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        self.gateway = self.runnerd = self.stored = None
        shutil.rmtree(self.dir, ignore_errors=True)


class ClusterCase(unittest.TestCase):
    """Tests on one stored and gateway of their own, per class: self.cl
    (Cluster(**CLUSTER)) and self.c (a client of it); with WAIT_SERVING,
    setUpClass also waits until the gateway reports SERVING."""

    CLUSTER = {}
    WAIT_SERVING = False

    @classmethod
    def setUpClass(cls):
        cls.cl = Cluster(**cls.CLUSTER)
        cls.c = cls.cl.client()
        if cls.WAIT_SERVING:
            cls.cl.wait_serving(cls.c)

    @classmethod
    def tearDownClass(cls):
        cls.cl.close()


class StreamThread:
    """Reads the server stream call on a daemon thread, started by
    __init__: on_message(i, m) for each message, then on_end(error),
    error the grpc.RpcError that ended the stream or None. A subclass
    sets what it keeps before calling this __init__."""

    def __init__(self, call):
        self.call = call
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        error = None
        try:
            for i, m in enumerate(self.call):
                self.on_message(i, m)
        except grpc.RpcError as e:
            error = e
        finally:
            self.on_end(error)


class FreshClusterCase(unittest.TestCase):
    """Tests that each need a stored and gateway of their own (they kill
    or stall them): self.cl, a Cluster() started for every test and
    closed after it, and self.c, a client of it."""

    def setUp(self):
        self.cl = Cluster()
        self.addCleanup(self.cl.close)  # also if setUp fails
        self.c = self.cl.client()


class TapResult(unittest.TestResult):
    """Prints one TAP line per test case; the plan comes at the end."""

    def __init__(self):
        super().__init__()
        self.n = 0

    def _line(self, ok, test, extra=""):
        self.n += 1
        name = test.id().split(".", 1)[-1] if hasattr(test, "id") else test
        print("%s %d - %s%s" % ("ok" if ok else "not ok", self.n, name,
                                extra), flush=True)

    def _diag(self, err):
        for line in "".join(traceback.format_exception(*err)).splitlines():
            print("# " + line, flush=True)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._line(True, test)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._line(False, test)
        self._diag(err)

    def addError(self, test, err):
        super().addError(test, err)
        self._line(False, test)
        self._diag(err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._line(True, test, " # SKIP " + reason)


def main(module_name="__main__"):
    """Runs every test of the module and prints TAP; exit 1 on failure."""
    suite = unittest.defaultTestLoader.loadTestsFromModule(
        sys.modules[module_name])
    res = TapResult()
    suite.run(res)
    print("1..%d" % res.n, flush=True)
    sys.exit(0 if res.wasSuccessful() and res.n > 0 else 1)
