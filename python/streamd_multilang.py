"""Write streamd spouts and bolts in Python.

streamd runs a `command:` component as a child process that speaks Apache
Storm's multi-lang protocol on stdin/stdout: JSON messages, each followed
by a line "end". This module implements the child's side, so a component
is a class with a few methods:

    import streamd_multilang as ml

    class Split(ml.BasicBolt):
        def process(self, tup):
            for word in tup.values[0].split():
                ml.emit([word])

    Split().run()

BasicBolt anchors its emits to the input and acks it after process()
(fails it when process raises). Bolt leaves anchoring and acking to you;
Spout is driven by next_tuple / ack / fail calls. Whatever is printed to
stdout would break the protocol: log with ml.log(), or write to stderr
(which streamd copies into the worker log).
"""
import json
import os
import sys
import traceback

__all__ = ["Tuple", "Bolt", "BasicBolt", "Spout", "emit", "emit_direct", "ack", "fail",
           "log", "report_error", "sync", "conf", "context"]

_in = sys.stdin
_out = sys.stdout
_queued = []          # commands read while waiting for task ids
conf = {}             # the topology's configuration, from the handshake
context = {}          # the task's context, from the handshake
_anchor = None        # BasicBolt: the input being processed

LOG_TRACE, LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR = range(5)


def _read_message():
    lines = []
    while True:
        line = _in.readline()
        if not line:
            raise EOFError("streamd closed the pipe")
        line = line.rstrip("\n")
        if line == "end":
            break
        lines.append(line)
    return json.loads("\n".join(lines))


def _send(msg):
    _out.write(json.dumps(msg))
    _out.write("\nend\n")
    _out.flush()


def _read_command():
    if _queued:
        return _queued.pop(0)
    return _read_message()


def _read_task_ids():
    while True:
        msg = _read_message()
        if isinstance(msg, list):
            return msg
        _queued.append(msg)


class Tuple(object):
    __slots__ = ("id", "component", "stream", "task", "values")

    def __init__(self, id, component, stream, task, values):
        self.id, self.component, self.stream, self.task, self.values = id, component, stream, task, values

    def is_heartbeat(self):
        return self.task == -1 and self.stream == "__heartbeat"

    def is_tick(self):
        return self.component == "__system" and self.stream == "__tick"

    def __repr__(self):
        return "Tuple(%r, %r, %r, %r, %r)" % (self.id, self.component, self.stream, self.task, self.values)


def _handshake():
    global conf, context
    setup = _read_message()
    conf, context = setup.get("conf", {}), setup.get("context", {})
    pid = os.getpid()
    _send({"pid": pid})
    pid_dir = setup.get("pidDir")
    if pid_dir:
        open(os.path.join(pid_dir, str(pid)), "w").close()
    return conf, context


def emit(values, stream=None, anchors=None, id=None, need_task_ids=False, task=None):
    """Emits values. A bolt's emits are anchored to `anchors` (tuples or
    ids; BasicBolt: the input); a spout's with `id` are tracked and acked
    or failed back. Returns the receiving task ids when need_task_ids."""
    msg = {"command": "emit", "tuple": list(values)}
    if stream is not None:
        msg["stream"] = stream
    if task is not None:
        msg["task"] = task
    if anchors is None and _anchor is not None:
        anchors = [_anchor]
    if anchors:
        msg["anchors"] = [a.id if isinstance(a, Tuple) else a for a in anchors]
    if id is not None:
        msg["id"] = id
    msg["need_task_ids"] = bool(need_task_ids)
    _send(msg)
    return _read_task_ids() if need_task_ids else None


def emit_direct(task, values, stream=None, anchors=None, id=None):
    return emit(values, stream=stream, anchors=anchors, id=id, task=task)


def ack(tup):
    _send({"command": "ack", "id": tup.id if isinstance(tup, Tuple) else tup})


def fail(tup):
    _send({"command": "fail", "id": tup.id if isinstance(tup, Tuple) else tup})


def sync():
    _send({"command": "sync"})


def log(msg, level=LOG_INFO):
    _send({"command": "log", "msg": str(msg), "level": level})


def report_error(msg):
    _send({"command": "error", "msg": str(msg)})


class Bolt(object):
    def initialize(self, conf, context):
        pass

    def process(self, tup):
        raise NotImplementedError

    def _handle(self, tup):
        self.process(tup)

    def run(self):
        self.initialize(*_handshake())
        try:
            while True:
                m = _read_command()
                tup = Tuple(m.get("id"), m.get("comp"), m.get("stream"), m.get("task"), m.get("tuple", []))
                if tup.is_heartbeat():
                    sync()
                else:
                    self._handle(tup)
        except EOFError:
            pass
        except Exception:
            report_error(traceback.format_exc())
            raise


class BasicBolt(Bolt):
    def _handle(self, tup):
        global _anchor
        _anchor = tup
        try:
            self.process(tup)
            ack(tup)
        except Exception:
            report_error(traceback.format_exc())
            fail(tup)
        finally:
            _anchor = None


class Spout(object):
    def initialize(self, conf, context):
        pass

    def next_tuple(self):
        pass

    def ack(self, id):
        pass

    def fail(self, id):
        pass

    def activate(self):
        pass

    def deactivate(self):
        pass

    def run(self):
        self.initialize(*_handshake())
        try:
            while True:
                m = _read_command()
                cmd = m.get("command")
                if cmd == "next":
                    self.next_tuple()
                elif cmd == "ack":
                    self.ack(m.get("id"))
                elif cmd == "fail":
                    self.fail(m.get("id"))
                elif cmd == "activate":
                    self.activate()
                elif cmd == "deactivate":
                    self.deactivate()
                sync()
        except EOFError:
            pass
        except Exception:
            report_error(traceback.format_exc())
            raise
