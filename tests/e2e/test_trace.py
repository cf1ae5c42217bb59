#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# test_trace.py - one failing call can be followed across the daemons by
# its request id (proto/IPC.md, "Request ids"): an Append refused by
# eventfold-stored (an event id reused for another event) is logged by
# the gateway under the call's id, with the id of the APPEND_MANY that
# carried it and its entry, and stored logs that same request id and
# entry with the refusal. Two calls get two ids.
import os
import re

import grpc

import efharness as h
from efharness import pb

C = grpc.StatusCode
LINK = re.compile(r"call ([0-9a-f]{16}): append went as request "
                  r"([0-9a-f]{16}) entry (\d+): EVENT_ID_REUSED")


class TraceTest(h.ClusterCase):
    WAIT_SERVING = True

    def whole_log(self, name):
        with open(os.path.join(self.cl.dir, name + ".log"), "rb") as f:
            return f.read().decode(errors="replace")

    def refused_append(self):
        """An append whose event id another stream holds: its call id,
        request id and entry, from the gateway's log."""
        ev = h.events(1)
        self.c.append(h.new_id(), h.no_stream(), ev)
        before = len(LINK.findall(self.whole_log("gatewayd")))
        code, _ = h.rpc_status(self.c.append, h.new_id(), h.no_stream(),
                            [pb.ProposedEvent(event_id=ev[0].event_id,
                                              event_type="Other",
                                              payload=b"{}")])
        self.assertEqual(code, C.ALREADY_EXISTS)
        h.wait_for(lambda: len(LINK.findall(self.whole_log("gatewayd"))) >
                   before, what="the gateway's line for the refusal")
        return LINK.findall(self.whole_log("gatewayd"))[before]

    def test_stored_logs_the_gateways_request_id(self):
        call, req, entry = self.refused_append()
        want = "append refused (request %s entry %s): EVENT_ID_REUSED" % (
            req, entry)
        h.wait_for(lambda: want in self.whole_log("stored"),
                   what="stored's line for request %s" % req)
        gw = self.whole_log("gatewayd")
        self.assertRegex(gw, r"call %s /\S+: gRPC status 6: " % call)

    def test_each_call_its_own_id(self):
        a = self.refused_append()
        b = self.refused_append()
        self.assertNotEqual(a[0], b[0])
        self.assertNotEqual(a[1], b[1])


if __name__ == "__main__":
    h.main()
