#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# test_security.py - TLS, mTLS (certificates made with the openssl CLI
# at test time) and HS256 JWT bearer auth (tokens signed here with
# hmac): missing, malformed, wrong secret, expired, missing sub or exp,
# alg none are all UNAUTHENTICATED; a good token works; health is open.
import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import grpc

import efharness as h

C = grpc.StatusCode


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_certs(d):
    """A CA, a server cert for 127.0.0.1, a client cert, a rogue CA."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
          "-nodes"]
    for ca in ("ca", "rogue"):
        openssl("req", "-x509", *ec, "-keyout", ca + ".key", "-out",
                ca + ".pem", "-days", "2", "-subj", "/CN=test-" + ca, cwd=d)
    for name, ext, ca in (
            ("server", "subjectAltName=IP:127.0.0.1,DNS:localhost", "ca"),
            ("client", "extendedKeyUsage=clientAuth", "ca"),
            ("rclient", "extendedKeyUsage=clientAuth", "rogue")):
        openssl("req", *ec, "-keyout", name + ".key", "-out", name + ".csr",
                "-subj", "/CN=" + name, cwd=d)
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(ext + "\n")
        openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem",
                "-CAkey", ca + ".key", "-CAcreateserial", "-out",
                name + ".pem", "-days", "2", "-extfile", name + ".ext",
                cwd=d)

    def rd(n):
        with open(os.path.join(d, n), "rb") as f:
            return f.read()
    return rd


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt(secret, claims, alg="HS256"):
    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    if alg == "none":
        return head + "." + body + "."
    sig = hmac.new(secret.encode(), (head + "." + body).encode(),
                   hashlib.sha256).digest()
    return head + "." + body + "." + b64(sig)


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.certdir = tempfile.mkdtemp(prefix="ef-certs-")
        cls.rd = staticmethod(make_certs(cls.certdir))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.certdir, ignore_errors=True)

    def cert(self, n):
        return os.path.join(self.certdir, n)

    def tls_cluster(self, *args):
        """A cluster whose gateway serves TLS with the server's cert and
        key (and args), once it listens: the caller waits for SERVING with
        a client the gateway accepts. Closed after the test."""
        cl = h.Cluster(gw_args=["--tls-cert", self.cert("server.pem"),
                                "--tls-key", self.cert("server.key")] +
                       list(args), start=False)
        self.addCleanup(cl.close)
        cl.start_stored()
        cl.start_gateway(wait=False)
        cl.wait_listening()
        return cl

    def test_tls(self):
        cl = self.tls_cluster()
        creds = grpc.ssl_channel_credentials(self.rd("ca.pem"))
        c = cl.client(creds)
        cl.wait_serving(c)
        c.append(h.new_id(), h.any_(), h.events(2))
        self.assertEqual(len(c.read_all(0, 10)), 2)
        # plaintext does not get through
        with self.assertRaises(grpc.RpcError):
            cl.client().check(timeout=10)
        # a client that trusts another CA does not either
        bad = cl.client(grpc.ssl_channel_credentials(self.rd("rogue.pem")))
        with self.assertRaises(grpc.RpcError):
            bad.check(timeout=10)

    def test_mtls(self):
        cl = self.tls_cluster("--tls-ca", self.cert("ca.pem"))
        good = cl.client(grpc.ssl_channel_credentials(
            self.rd("ca.pem"), self.rd("client.key"),
            self.rd("client.pem")))
        cl.wait_serving(good)
        good.append(h.new_id(), h.any_(), h.events(1))
        anon = cl.client(grpc.ssl_channel_credentials(self.rd("ca.pem")))
        with self.assertRaises(grpc.RpcError) as cm:
            anon.check(timeout=10)
        self.assertEqual(cm.exception.code(), C.UNAVAILABLE)
        rogue = cl.client(grpc.ssl_channel_credentials(
            self.rd("ca.pem"), self.rd("rclient.key"),
            self.rd("rclient.pem")))
        with self.assertRaises(grpc.RpcError):
            rogue.append(h.new_id(), h.any_(), h.events(1), timeout=10)
        self.assertEqual(good.check(), h.SERVING)


class JwtTest(h.ClusterCase):
    SECRET = "s3cret-for-tests"
    # the secret comes from EventfoldDB's environment variable
    CLUSTER = {"gw_env": {"EVENTFOLD_JWT_SECRET": SECRET}}

    def client(self, auth=None):
        md = None if auth is None else [("authorization", auth)]
        return self.cl.client(metadata=md)

    def good(self, **over):
        claims = {"sub": "tester", "exp": int(time.time()) + 3600}
        claims.update(over)
        return "Bearer " + jwt(self.SECRET, claims)

    def denied(self, auth):
        c = self.client(auth)
        with self.assertRaises(grpc.RpcError) as cm:
            c.append(h.new_id(), h.any_(), h.events(1))
        self.assertEqual(cm.exception.code(), C.UNAUTHENTICATED, auth)
        with self.assertRaises(grpc.RpcError) as cm:
            c.read_all(0, 1)
        self.assertEqual(cm.exception.code(), C.UNAUTHENTICATED, auth)
        with self.assertRaises(grpc.RpcError) as cm:
            next(iter(c.subscribe_all(0)))
        self.assertEqual(cm.exception.code(), C.UNAUTHENTICATED, auth)
        return cm.exception.details()

    def test_valid_token(self):
        c = self.client(self.good())
        sid = h.new_id()
        c.append(sid, h.no_stream(), h.events(2))
        self.assertEqual(len(c.read_stream(sid)), 2)
        self.assertGreaterEqual(len(c.list_streams()), 1)
        it = iter(c.subscribe_stream(sid, 0))
        self.assertTrue(next(it).HasField("event"))

    def test_missing(self):
        self.assertIn("missing", self.denied(None))

    def test_malformed(self):
        self.denied("Basic dXNlcjpwYXNz")
        self.denied("Bearer not.a.jwt")
        self.denied("Bearer ")
        self.denied("bearer " + self.good()[7:])

    def test_wrong_secret(self):
        self.denied("Bearer " + jwt("other-secret", {
            "sub": "x", "exp": int(time.time()) + 3600}))

    def test_expired(self):
        self.denied(self.good(exp=int(time.time()) - 5))

    def test_missing_sub_or_exp(self):
        self.denied("Bearer " + jwt(self.SECRET, {
            "exp": int(time.time()) + 3600}))
        self.denied("Bearer " + jwt(self.SECRET, {"sub": "x"}))

    def test_alg_none(self):
        self.denied("Bearer " + jwt(self.SECRET, {
            "sub": "x", "exp": int(time.time()) + 3600}, alg="none"))

    def test_health_is_open(self):
        c = self.client(None)
        self.assertEqual(c.check(), h.SERVING)
        it = iter(c.watch())
        self.assertEqual(next(it).status, h.SERVING)
        it.cancel()


if __name__ == "__main__":
    h.main()
