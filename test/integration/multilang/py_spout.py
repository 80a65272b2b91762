"""A spout written with streamd_multilang: emits records 0..N-1 with their
number as the message id, the even ones on "default" [rec] and the odd ones
on "odd" [rec, n]; a failed record is emitted again (replay), an acked one
forgotten. argv: N REPORT_FILE [DIE_AT MARKER]. Writes "done" to the report
once every record was acked. With DIE_AT it exits when it is about to emit
record DIE_AT, unless the file MARKER exists (it creates it first), so
that the child streamd starts next starts over from record 0."""
import json
import os
import sys

import streamd_multilang as ml

N, REPORT = int(sys.argv[1]), sys.argv[2]
DIE_AT, MARKER = (int(sys.argv[3]), sys.argv[4]) if len(sys.argv) > 4 else (None, None)


class Records(ml.Spout):
    def initialize(self, conf, context):
        self.next = 0
        self.replay = []
        self.pending = set()
        self.acked = 0
        self.failed = 0
        self.report = open(REPORT, "a")
        self.note(kind="start")

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
        if n == DIE_AT and not os.path.exists(MARKER):
            open(MARKER, "w").close()
            self.note(kind="dying", at=n)
            os._exit(5)
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
