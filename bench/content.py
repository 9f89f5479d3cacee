"""Benchmark: which library for reply_text and for HTML to text (SPEC §12), measured, not guessed.

    python -m bench.content reply   # accuracy on bench/reply_labels.yml + time per message
    python -m bench.content html    # time per HTML body of the corpora, worst cases, pathological input

Bodies come from ``../shared/corpora/customer`` (each mail's body as routing reads it), the golden
mails of ``tests/mail`` and, for HTML, the adversarial inputs of issue 15 and of this benchmark.
Prints a Markdown table (BENCHMARKS.md holds the one of record).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT.parent / "shared" / "corpora"
if not CORPORA.exists():
    CORPORA = Path("/work/shared/corpora")
LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "pl", "sv", "da", "cs", "ja", "ko", "zh"]


def corpus_mails() -> list[tuple[str, bytes]]:
    mails = []
    for folder in (CORPORA / "customer", ROOT / "tests" / "mail"):
        for path in sorted(folder.iterdir()):
            if path.suffix in (".md", ".tsv", ".yml", ".py"):
                continue
            mails.append((path.name, path.read_bytes()))
    return mails


def label_text(case: dict) -> str:
    from routing.mailparse import parse_message

    if "text" in case:
        return case["text"]
    where, name = case["file"].split("/", 1)
    folder = CORPORA / "customer" if where == "corpora" else ROOT / "tests" / "mail"
    return parse_message((folder / name).read_bytes()).body.text


def reply_candidates() -> dict:
    from email_reply_parser import EmailReplyParser as GithubParser
    from mailparser_reply import EmailReplyParser
    import quotequail

    from mailparser_reply.parser import EmailMessage

    mpr = EmailReplyParser(languages=LANGUAGES)

    def mail_parser_reply(text: str) -> str:
        message = mpr.read(text)
        return message.replies[0].body if message.replies else ""

    def mail_parser_reply_lists(text: str) -> str:
        message = EmailMessage(text=text, languages=list(LANGUAGES), keep_hyphen_lists=True).read()
        return message.replies[0].body if message.replies else ""

    def quotequail_quote(text: str) -> str:
        return "".join(part for expanded, part in quotequail.quote(text, quote_intro_line=True) if expanded)

    def email_reply_parser(text: str) -> str:
        return GithubParser.parse_reply(text)

    from routing.reply_text import reply_text

    return {"mail-parser-reply 1.36": mail_parser_reply,
            "mail-parser-reply 1.36, keep_hyphen_lists": mail_parser_reply_lists, "quotequail 0.5.4": quotequail_quote,
            "email-reply-parser 0.5.12": email_reply_parser, "routing.reply_text (chosen)": reply_text}


def score(fn, cases: list[tuple[dict, str]]) -> tuple[int, list[str]]:
    good, misses = 0, []
    for case, text in cases:
        got = fn(text) or ""
        if not got.strip():
            got = text  # the rule: nothing left -> the whole text
        ok = all(k in got for k in case["keep"]) and not any(d in got for d in case["drop"])
        good += ok
        if not ok:
            misses.append(case.get("file") or case["text"][:30])
    return good, misses


def bench_reply() -> None:
    from routing.mailparse import parse_message

    labels = yaml.safe_load((ROOT / "bench" / "reply_labels.yml").read_text(encoding="utf-8"))["cases"]
    cases = [(case, label_text(case)) for case in labels]
    bodies = [parse_message(raw).body.text for _name, raw in corpus_mails()]
    print(f"{len(cases)} labelled cases, {len(bodies)} bodies for timing", file=sys.stderr)
    print("| library | correct | mean µs/message | p99 µs | max ms | misses |")
    print("|---|---|---|---|---|---|")
    for name, fn in reply_candidates().items():
        good, misses = score(fn, cases)
        times = []
        for text in bodies * 3:
            t0 = time.perf_counter()
            fn(text)
            times.append((time.perf_counter() - t0) * 1e6)
        times.sort()
        print(f"| {name} | {good}/{len(cases)} | {statistics.mean(times):.0f} | "
              f"{times[int(len(times) * 0.99)]:.0f} | {times[-1] / 1000:.1f} | {', '.join(misses) or '-'} |")


ADVERSARIAL = {
    "issue 15: '<a b=\"' * 23000": '<a b="' * 23000,
    "20,000 nested div": "<div>" * 20000 + "x" + "</div>" * 20000,
    "50,000 table cells": "<table><tr>" + "<td>x</td>" * 50000 + "</tr></table>",
    "30,000 links": "".join(f'<a href="http://x.example/{i}">l{i}</a> ' for i in range(30000)),
    "50,000 attributes on one tag": "<p " + " ".join(f"a{i}=x" for i in range(50000)) + ">x</p>",
}


def html_candidates() -> dict:
    import html2text
    import inscriptis
    from inscriptis.css_profiles import CSS_PROFILES
    from inscriptis.model.config import ParserConfig
    from selectolax.lexbor import LexborHTMLParser

    config = ParserConfig(css=CSS_PROFILES["strict"], display_links=True)
    converter = html2text.HTML2Text()
    converter.body_width = 0
    return {
        "inscriptis 2.7.6": lambda h: inscriptis.get_text(h, config),
        "selectolax 1.0.2 (lexbor)": lambda h: LexborHTMLParser(h).text(separator="\n"),
        "html2text 2025.4.15": converter.handle,
    }


def html_bodies() -> list[str]:
    from routing.mailparse import _Found, _Part, _split_head, _Tree, _walk

    bodies = []
    for _name, raw in corpus_mails():
        headers, start = _split_head(raw)
        tree = _Tree(raw)
        found = _Found()
        _walk(_Part(headers, tree, start, len(raw)), found)
        bodies.extend(found.html)
    return bodies


def bench_html(limit: float) -> None:
    import multiprocessing

    bodies = html_bodies()
    print(f"{len(bodies)} HTML bodies, {sum(map(len, bodies)) / 1e3:.0f} kB", file=sys.stderr)
    print("| converter | mean ms/body | max ms | " + " | ".join(ADVERSARIAL) + " |")
    print("|---|---|---|" + "---|" * len(ADVERSARIAL))
    for name, fn in html_candidates().items():
        times = []
        for html in bodies:
            t0 = time.perf_counter()
            fn(html)
            times.append((time.perf_counter() - t0) * 1000)
        worst = []
        for html in ADVERSARIAL.values():
            # each adversarial input in a child process, stopped after `limit` seconds
            ctx = multiprocessing.get_context("fork")
            t0 = time.perf_counter()
            proc = ctx.Process(target=fn, args=(html,))
            proc.start()
            proc.join(limit)
            if proc.is_alive():
                proc.kill()
                proc.join()
                worst.append(f"> {limit:g} s")
            else:
                worst.append(f"{time.perf_counter() - t0:.2f} s")
        print(f"| {name} | {statistics.mean(times):.2f} | {max(times):.1f} | " + " | ".join(worst) + " |")
    from routing.html_text import html_to_text

    print("\nrouting.html_text.html_to_text (precheck + helper process):")
    for label, html in ADVERSARIAL.items():
        t0 = time.perf_counter()
        result = html_to_text(html)
        print(f"- {label}: {time.perf_counter() - t0:.2f} s, note: {result.note or '(converted)'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("reply", "html"))
    parser.add_argument("--limit", type=float, default=20.0, help="seconds per adversarial input")
    args = parser.parse_args(argv)
    bench_reply() if args.what == "reply" else bench_html(args.limit)


if __name__ == "__main__":
    main()
