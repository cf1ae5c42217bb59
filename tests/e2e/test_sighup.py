# SPDX-License-Identifier: MIT
#
# test_sighup.py - SIGHUP in eventfold-gatewayd and eventfold-runnerd
# does what their manuals say: nothing is read again, the signal is
# logged with the advice to restart, and the daemon keeps serving in the
# same process (the gateway stays SERVING and answers appends; runnerd
# answers Execute through it). stored's reload is tested by
# tests/integration/test_reload.c.
import signal
import unittest

import efharness as h


class SighupTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cl = h.Cluster(start=False)
        cls.addClassCleanup(cls.cl.close)  # also if setUpClass fails
        cls.cl.start_stored()
        cls.cl.start_runnerd()
        cls.cl.start_gateway()
        cls.c = cls.cl.client()

    def test_gatewayd(self):
        gw = self.cl.gateway
        # a file the gateway would refuse at start: not read on SIGHUP
        with open(self.cl.conf, "w") as f:
            f.write("[gatewayd]\nno_such_key = 1\n")
        try:
            gw.send_signal(signal.SIGHUP)
            h.wait_for(lambda: "SIGHUP: the gateway has nothing to "
                       "reload; restart it to change its configuration"
                       in self.cl.log("gatewayd"), what="gatewayd's line")
        finally:
            open(self.cl.conf, "w").close()
        self.assertIsNone(gw.poll())
        self.assertEqual(self.c.check(), h.SERVING)
        r = self.c.append(h.new_id(), h.no_stream(), h.events(1))
        self.assertEqual(r.first_stream_version, 0)

    def test_runnerd(self):
        rd = self.cl.runnerd
        with open(self.cl.conf, "w") as f:
            f.write("[runnerd]\nno_such_key = 1\n")
        try:
            rd.send_signal(signal.SIGHUP)
            h.wait_for(lambda: "SIGHUP: nothing to reload (restart to "
                       "load new plugins or settings)"
                       in self.cl.log("runnerd"), what="runnerd's line")
        finally:
            open(self.cl.conf, "w").close()
        self.assertIsNone(rd.poll())

        def execute():
            try:
                return self.c.runner("Execute", h.rpb.ExecuteRequest(
                    aggregate_type="todo", instance_id=h.new_id(),
                    command_type="Add", payload=b'{"title":"h"}',
                    command_id=h.new_id()), h.rpb.ExecuteResponse)
            except Exception:
                return None
        res = h.wait_for(execute, what="Execute after SIGHUP")
        self.assertEqual(res.event_count, 1)


if __name__ == "__main__":
    h.main()
