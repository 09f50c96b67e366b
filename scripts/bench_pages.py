#!/usr/bin/env python3
"""HTML pages for scripts/bench.sh (subfilter mode).

Usage: bench_pages.py SIZE PAGE WANT FROM1 TO1 FROM2 TO2

Writes PAGE, an HTML page of exactly SIZE bytes as a backend would serve
it: FROM1 (an application's own address) in a <link> of its head and then
in a link of every paragraph of the body, about one every 256 bytes, and
FROM2 (`</head>`) once. WANT is the same page with every FROM1 written as
TO1 and the FROM2 as TO2: what a proxy's sub_filter must send. It is made
piece by piece beside PAGE, not by replacing strings in it, so that it does
not depend on how a replacement is done. Prints one line:

  bytes=1024 rewritten_bytes=1036 from1=4 from2=1
"""

import sys

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo "
         "lima mike november oscar papa quebec romeo sierra tango uniform "
         "victor whiskey xray yankee zulu").split()


class Page:
    """The page as served and as it must come out of the filter."""

    def __init__(self, subs):
        self.subs = subs
        self.page, self.want = [], []
        self.count = [0] * len(subs)

    def text(self, s):
        self.page.append(s)
        self.want.append(s)

    def sub(self, i):
        self.page.append(self.subs[i][0])
        self.want.append(self.subs[i][1])
        self.count[i] += 1

    def size(self):
        return sum(len(s.encode()) for s in self.page)


def words(n, seed):
    """n words, varying with seed, so that paragraphs differ."""
    return " ".join(WORDS[(seed * 7 + k * k * 31 + k) % len(WORDS)] for k in range(n))


def paragraph(page, n):
    """One paragraph of about 256 bytes holding one link to the app."""
    page.text(f'<p id="p{n}">{words(12, n)} <a href="')
    page.sub(0)
    page.text(f'item/{n:05d}?ref=list">item {n}</a> {words(14, n + 1)}.</p>\n')


def build(size, subs):
    page = Page(subs)
    page.text('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
              "<title>inverso bench page</title>\n"
              '<link rel="stylesheet" href="')
    page.sub(0)
    page.text('static/site.css">\n')
    page.sub(1)
    page.text("\n<body>\n<h1>Catalogue</h1>\n")
    tail = "</body></html>\n"
    n = 1
    while True:
        trial = Page(page.subs)
        paragraph(trial, n)
        if page.size() + trial.size() + len(tail) > size:
            break
        paragraph(page, n)
        n += 1
    pad = size - page.size() - len(tail)
    if pad < 0:
        sys.exit(f"bench_pages.py: {size} bytes cannot hold the page's head")
    if pad > 0:
        # Words with no string to find in them, ending the line.
        filler = (words(pad // 4 + 1, 0) * 2)[:pad - 1] + "\n"
        page.text(filler)
    page.text(tail)
    return page


def main():
    if len(sys.argv) != 8:
        sys.exit(__doc__)
    size = int(sys.argv[1])
    page_path, want_path = sys.argv[2], sys.argv[3]
    subs = [(sys.argv[4], sys.argv[5]), (sys.argv[6], sys.argv[7])]
    page = build(size, subs)
    body, want = "".join(page.page).encode(), "".join(page.want).encode()
    if len(body) != size:
        sys.exit(f"bench_pages.py: made {len(body)} bytes, not {size}")
    with open(page_path, "wb") as f:
        f.write(body)
    with open(want_path, "wb") as f:
        f.write(want)
    print(f"bytes={len(body)} rewritten_bytes={len(want)} "
          f"from1={page.count[0]} from2={page.count[1]}")


if __name__ == "__main__":
    main()
