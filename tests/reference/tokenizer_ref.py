#!/usr/bin/python3
"""Independent reference for gpt2c's tokenizer: OpenAI's GPT-2 encoder algorithm.

Reads weights/vocab/encoder.json and vocab.bpe (after checking their sha256
against weights/vocab/README.md), encodes every case of
tests/fixtures/tokenizer_corpus.txt and writes tests/fixtures/tokenizer_expected.txt.

The algorithm is the original one, written out plainly:
  * the input bytes are decoded as UTF-8 with errors='surrogateescape', so an
    invalid byte becomes one lone surrogate U+DC80..U+DCFF, a code point that
    is neither letter, number nor space for the pattern;
  * `regex` (not `re`: it knows \\p{L} / \\p{N}) splits the text with the exact
    original pattern;
  * each piece goes back to bytes ('surrogateescape' restores invalid bytes),
    every byte to its printable stand-in (bytes_to_unicode);
  * BPE: repeatedly take the adjacent pair of lowest merge rank and merge all
    its occurrences left to right, until no pair has a rank;
  * the resulting strings are looked up in encoder.json.

Output format (tokenizer_expected.txt), one case per line, in corpus order:
    <hex of the input bytes> TAB <token ids separated by single spaces>
Lines starting with '#' are comments. An empty input has an empty hex field.

Corpus format (tokenizer_corpus.txt): one case per line (the line's newline is
not part of it); blank lines and lines starting with '#' are skipped:
    t <text>          text; escapes: \\\\ \\n \\t \\r \\0 \\s (space) \\xHH (one raw
                      byte, any value) \\uHHHH and \\UHHHHHHHH (UTF-8 of a code point,
                      surrogates included, written as the 3 bytes ED xx xx)
    x <hex>           raw bytes in hex (spaces between bytes allowed)
    r <count> <text>  <text> (escaped as for t) repeated <count> times

Usage: tokenizer_ref.py [--check]   (--check: compare with the committed
expected file instead of writing it; exit 1 on any difference)
"""
import hashlib
import json
import os
import re as std_re
import sys

import regex

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VOCAB_DIR = os.path.join(ROOT, "weights", "vocab")
CORPUS = os.path.join(ROOT, "tests", "fixtures", "tokenizer_corpus.txt")
EXPECTED = os.path.join(ROOT, "tests", "fixtures", "tokenizer_expected.txt")

PATTERN = regex.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


def check_sha256():
    """The vocabulary files must be the ones README.md records."""
    readme = open(os.path.join(VOCAB_DIR, "README.md"), encoding="utf-8").read()
    for name in ("encoder.json", "vocab.bpe"):
        m = std_re.search(r"`?" + std_re.escape(name) + r"`?[^\n]*?\b([0-9a-f]{64})\b", readme)
        if not m:
            sys.exit(f"tokenizer_ref: no sha256 for {name} in weights/vocab/README.md")
        got = hashlib.sha256(open(os.path.join(VOCAB_DIR, name), "rb").read()).hexdigest()
        if got != m.group(1):
            sys.exit(f"tokenizer_ref: {name}: sha256 {got}, README.md records {m.group(1)}")


def bytes_to_unicode():
    """Byte -> printable character: printable Latin-1 stays, the other 68
    bytes take U+0100 onwards in increasing byte order."""
    keep = (list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) +
            list(range(0xAE, 0xFF + 1)))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class Encoder:
    def __init__(self):
        with open(os.path.join(VOCAB_DIR, "encoder.json"), encoding="utf-8") as f:
            self.encoder = json.load(f)
        with open(os.path.join(VOCAB_DIR, "vocab.bpe"), encoding="utf-8") as f:
            lines = f.read().split("\n")
        if lines and lines[0].startswith("#version"):
            lines = lines[1:]
        merges = [tuple(line.split(" ")) for line in lines if line.strip()]
        assert all(len(m) == 2 for m in merges)
        self.ranks = {pair: rank for rank, pair in enumerate(merges)}
        self.byte_char = bytes_to_unicode()
        assert len(self.encoder) == 50257 and len(merges) == 50000

    def bpe(self, word):
        """word: tuple of symbols. Merge the lowest-ranked pair everywhere."""
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = tuple(out)
        return word

    def encode(self, data):
        text = data.decode("utf-8", errors="surrogateescape")
        ids = []
        for piece in PATTERN.findall(text):
            raw = piece.encode("utf-8", errors="surrogateescape")
            word = tuple(self.byte_char[b] for b in raw)
            ids.extend(self.encoder[sym] for sym in self.bpe(word))
        return ids


ESCAPE = std_re.compile(r"\\(?:x([0-9A-Fa-f]{2})|u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|(.))")


def unescape(s, lineno):
    out = bytearray()
    pos = 0
    for m in ESCAPE.finditer(s):
        out += s[pos:m.start()].encode("utf-8")
        pos = m.end()
        if m.group(1):
            out.append(int(m.group(1), 16))
        elif m.group(2) or m.group(3):
            cp = int(m.group(2) or m.group(3), 16)
            out += chr(cp).encode("utf-8", errors="surrogatepass")
        else:
            simple = {"\\": b"\\", "n": b"\n", "t": b"\t", "r": b"\r", "0": b"\0", "s": b" "}
            if m.group(4) not in simple:
                sys.exit(f"{CORPUS}:{lineno}: unknown escape \\{m.group(4)}")
            out += simple[m.group(4)]
    if s[pos:].endswith("\\"):
        sys.exit(f"{CORPUS}:{lineno}: dangling backslash")
    out += s[pos:].encode("utf-8")
    return bytes(out)


def read_corpus():
    cases = []
    with open(CORPUS, encoding="utf-8", newline="\n") as f:
        for lineno, line in enumerate(f, 1):
            line = line[:-1] if line.endswith("\n") else line
            if not line or line.startswith("#"):
                continue
            kind, _, rest = line.partition(" ")
            if kind == "t":
                cases.append(unescape(rest, lineno))
            elif kind == "x":
                cases.append(bytes.fromhex(rest))
            elif kind == "r":
                count, _, text = rest.partition(" ")
                cases.append(unescape(text, lineno) * int(count))
            else:
                sys.exit(f"{CORPUS}:{lineno}: expected a line starting 't ', 'x ' or 'r ', "
                         f"found {line[:40]!r}")
    return cases


HEADER = """\
# GPT-2 token ids for tests/fixtures/tokenizer_corpus.txt, generated by
# tests/reference/tokenizer_ref.py (OpenAI's encoder algorithm on `regex`); do not edit.
# One case per line, in corpus order: <hex of the input bytes> TAB <ids separated by spaces>.
"""


def main():
    check_sha256()
    enc = Encoder()
    cases = read_corpus()
    lines = [HEADER]
    n_tokens = 0
    for data in cases:
        ids = enc.encode(data)
        n_tokens += len(ids)
        lines.append(data.hex() + "\t" + " ".join(map(str, ids)) + "\n")
    text = "".join(lines)
    if "--check" in sys.argv[1:]:
        old = open(EXPECTED, encoding="ascii").read()
        if old != text:
            sys.exit("tokenizer_ref: tokenizer_expected.txt is out of date: rerun "
                     "tests/reference/tokenizer_ref.py")
        print(f"tokenizer_ref: {len(cases)} cases, {n_tokens} tokens: expected file up to date")
        return
    with open(EXPECTED, "w", encoding="ascii", newline="\n") as f:
        f.write(text)
    print(f"tokenizer_ref: wrote {len(cases)} cases, {n_tokens} tokens to {EXPECTED}")


if __name__ == "__main__":
    main()
