"""A multi-lang bolt that re-emits each input's values anchored to it and
acks it (the Python twin of the pass_through built-in), for tools/bench."""
import streamd_multilang as ml


class PassThrough(ml.BasicBolt):
    def process(self, tup):
        ml.emit(tup.values)


if __name__ == "__main__":
    PassThrough().run()
