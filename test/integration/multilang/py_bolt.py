"""A bolt written with streamd_multilang (Bolt: it anchors and acks itself):
takes records from both spout streams, fails every record whose number is a
multiple of 5 the first time it sees it, and otherwise emits [rec] on
"default" anchored to the input (asking for the task ids once and noting
them), [rec, task] directly to a task of component "direct", then acks.
argv: REPORT_FILE."""
import streamd_multilang as ml
from report_bolt import ReportingBolt


class Records(ReportingBolt):
    def initialize(self, conf, context):
        super().initialize(conf, context)
        self.seen = set()
        self.direct = sorted(int(t) for t, c in context["task->component"].items() if c == "direct")
        self.asked = False

    def process(self, tup):
        if tup.is_tick():
            return
        rec = tup.values[0]
        n = int(rec.split()[1])
        if n % 5 == 0 and rec not in self.seen:
            self.seen.add(rec)
            self.note(kind="failed", rec=rec, stream=tup.stream)
            ml.fail(tup)
            return
        if not self.asked:
            self.asked = True
            self.note(kind="task_ids", ids=ml.emit([rec], anchors=[tup], need_task_ids=True))
        else:
            ml.emit([rec], anchors=[tup])
        task = self.direct[n % len(self.direct)]
        ml.emit_direct(task, [rec, task], stream="direct", anchors=[tup])
        ml.ack(tup)


if __name__ == "__main__":
    Records().run()
