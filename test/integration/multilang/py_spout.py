"""A spout written with streamd_multilang: emits records 0..N-1 with their
number as the message id, the even ones on "default" [rec] and the odd ones
on "odd" [rec, n]; a failed record is emitted again (replay), an acked one
forgotten. argv: N REPORT_FILE. Writes "done" to the report once every
record was acked."""
import json
import sys

import streamd_multilang as ml

N, REPORT = int(sys.argv[1]), sys.argv[2]


class Records(ml.Spout):
    def initialize(self, conf, context):
        self.next = 0
        self.replay = []
        self.pending = set()
        self.acked = 0
        self.failed = 0
        self.report = open(REPORT, "a")

    def note(self, **kw):
        self.report.write(json.dumps(kw) + "\n")
        self.report.flush()

    def next_tuple(self):
        if self.replay:
            n = self.replay.pop(0)
        elif self.next < N:
            n = self.next
            self.next += 1
        else:
            return
        self.pending.add(n)
        rec = "rec %04d" % n
        if n % 2:
            ml.emit([rec, n], stream="odd", id=n)
        else:
            ml.emit([rec], id=n)

    def ack(self, id):
        self.pending.discard(id)
        self.acked += 1
        if self.acked == N:
            self.note(kind="done", failed=self.failed)

    def fail(self, id):
        self.failed += 1
        self.replay.append(id)


if __name__ == "__main__":
    Records().run()
