"""The base of the test bolts written with streamd_multilang: a Bolt that
notes what it saw in a report file (argv[1], one JSON object a line) for
the test to assert on."""
import json
import sys

import streamd_multilang as ml


class ReportingBolt(ml.Bolt):
    def initialize(self, conf, context):
        self.report = open(sys.argv[1], "a")

    def note(self, **kw):
        self.report.write(json.dumps(kw) + "\n")
        self.report.flush()
