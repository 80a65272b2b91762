"""A bolt for the chaining tests (streamd_multilang): for every input
[line] it emits [line] on "default", asking for the task ids each time and
noting the set it got; for every line ending in "3" it first emits
[line, "extra"], which the stream (one field) refuses, and notes what that
emit returned; then it acks the input. argv: REPORT_FILE."""
import streamd_multilang as ml
from report_bolt import ReportingBolt


class Relay(ReportingBolt):
    def initialize(self, conf, context):
        super().initialize(conf, context)
        self.ids = set()

    def process(self, tup):
        if tup.is_tick():
            return
        line = tup.values[0]
        if line.endswith("3"):
            self.note(kind="refused", line=line, ids=ml.emit([line, "extra"], need_task_ids=True))
        ids = tuple(ml.emit([line], need_task_ids=True))
        if ids not in self.ids:
            self.ids.add(ids)
            self.note(kind="ids", ids=list(ids))
        ml.ack(tup)


if __name__ == "__main__":
    Relay().run()
