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

    def sighup_says(self, proc, name, line):
        """With a file that name would refuse at start (an unknown key in
        its section), SIGHUP to proc: name logs line, does not read the
        file and keeps running. The file is emptied after."""
        with open(self.cl.conf, "w") as f:
            f.write("[%s]\nno_such_key = 1\n" % name)
        try:
            proc.send_signal(signal.SIGHUP)
            h.wait_for(lambda: line in self.cl.log(name),
                       what="%s's line" % name)
        finally:
            open(self.cl.conf, "w").close()
        self.assertIsNone(proc.poll())

    def test_gatewayd(self):
        self.sighup_says(self.cl.gateway, "gatewayd",
                         "SIGHUP: the gateway has nothing to reload; "
                         "restart it to change its configuration")
        self.assertEqual(self.c.check(), h.SERVING)
        r = self.c.append(h.new_id(), h.no_stream(), h.events(1))
        self.assertEqual(r.first_stream_version, 0)

    def test_runnerd(self):
        self.sighup_says(self.cl.runnerd, "runnerd",
                         "SIGHUP: nothing to reload (restart to load new "
                         "plugins or settings)")

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
