"""The split step of the word count, as a multi-lang bolt: splits the
first string field of each input on runs of ASCII whitespace (the rule of
the built-in split_words) and emits [word] per word, anchored, then acks."""
import re

import streamd_multilang as ml

SPACE = re.compile(r"[ \t\n\v\f\r]+")


class SplitWords(ml.BasicBolt):
    def process(self, tup):
        text = next((v for v in tup.values if isinstance(v, str)), None)
        if text is None:
            return
        for word in SPACE.split(text):
            if word:
                ml.emit([word])


if __name__ == "__main__":
    SplitWords().run()
