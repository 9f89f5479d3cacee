"""A deterministic corpus of realistic support mail for benchmarks, with the expected result inside.

``generate(n, seed=1)`` yields raw RFC 5322 messages (CRLF line ends) as a support mailbox of an MSP
receives them: 2–200 KB, about 30 % with binary attachments (pdf/png/zip-like, base64), 50 %
multipart/alternative (text + HTML), 20 % replies (In-Reply-To/References to earlier messages of the
corpus, subject prefixes Re/AW/SV/RV/Antw), bodies in utf-8, iso-8859-1, cp1252, koi8-r and gb2312
(quoted-printable, base64 or 8bit), RFC 2047 subjects and display names, a few % auto-replies,
exact duplicates and replies that carry another client's ticket tag.

Every message starts with two headers a benchmark can check correctness with:

``X-Corpus-Kind``
    ``new`` (opens a ticket), ``reply`` (continues the ticket of ``X-Corpus-Target``),
    ``auto_reply`` (``Auto-Submitted: auto-replied``; must be ignored), ``duplicate`` (the exact
    message ``X-Corpus-Target`` again, same Message-ID and sender; must not be ticketed twice),
    ``wrong_client_tag`` (a subject tag ``[#N]`` of a ticket of *another* client; must not be
    appended to it).
``X-Corpus-Seq``
    the position of the message in the corpus (0-based).

Further ``X-Corpus-*`` headers: ``X-Corpus-Target`` (the seq of the message a reply, duplicate,
auto-reply or wrong-client tag refers to) and ``X-Corpus-Ticket`` (on ``new`` and
``wrong_client_tag`` messages: the ticket number the message is expected to open when tickets are
numbered 1, 2, 3… in arrival order and each of those two kinds opens one ticket). Tags ``[#N]``
in subjects use those expected numbers.

Senders are the contacts of ``CORPUS_CLIENTS`` (plus some colleagues at the same domains who are
not contacts yet); ``seed_database(engine)`` creates those clients, domains and contacts.

The same ``seed`` always gives the same bytes. Random text and binary blocks are built once per
process and sliced, so 10,000 messages take a few seconds.

CLI: ``python -m bench.corpus --n 1000 --out DIR`` writes ``DIR/000000.eml`` … .
"""

from __future__ import annotations

import argparse
import base64
import binascii
import bisect
import html
import random
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.header import Header
from email.utils import format_datetime, formataddr
from functools import lru_cache
from pathlib import Path

SUPPORT_ADDRESS = "support@msp.example"
KINDS = ("new", "reply", "auto_reply", "duplicate", "wrong_client_tag")
# Probabilities of each kind once there is something earlier to refer to; the rest is "new".
P_REPLY = 0.20
P_AUTO_REPLY = 0.03
P_DUPLICATE = 0.03
P_WRONG_CLIENT_TAG = 0.025
P_ATTACHMENT = 0.30
P_ALTERNATIVE = 0.50
P_UNKNOWN_COLLEAGUE = 0.12  # sender at a client domain who is not a contact yet
MIN_SIZE = 2 * 1024
MAX_SIZE = 200 * 1024
CRLF = "\r\n"


# --- the clients of the corpus ------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusContact:
    """A person at a client; the first contact of each client is its primary contact."""

    first_name: str
    last_name: str
    email: str


@dataclass(frozen=True)
class CorpusClient:
    """A client company of the corpus: its domains, its contacts and the language it writes in."""

    name: str
    domains: tuple[str, ...]
    contacts: tuple[CorpusContact, ...]
    language: str
    utc_offset_hours: int


def _client(name, domains, language, offset, people) -> CorpusClient:
    domain = domains[0]
    contacts = tuple(
        CorpusContact(first, last, f"{local}@{domain}") for first, last, local in people
    )
    return CorpusClient(name, tuple(domains), contacts, language, offset)


CORPUS_CLIENTS: tuple[CorpusClient, ...] = (
    _client("Acme Logistics Ltd", ["acme-logistics.example", "acme-freight.example"], "en", 0, [
        ("Alice", "Walker", "alice.walker"), ("Bob", "Chen", "bob.chen"),
        ("Carol", "O'Neill", "carol.oneill"), ("Dev", "Patel", "dev.patel"),
    ]),
    _client("Müller Bau GmbH", ["mueller-bau.example"], "de", 1, [
        ("Jürgen", "Müller", "j.mueller"), ("Sabine", "Groß", "s.gross"),
        ("Thomas", "Weiß", "t.weiss"), ("Anja", "Köhler", "a.koehler"),
    ]),
    _client("Nordlys Rådgivning AB", ["nordlys.example"], "sv", 1, [
        ("Åsa", "Lindqvist", "asa.lindqvist"), ("Björn", "Ström", "bjorn.strom"),
        ("Märta", "Ek", "marta.ek"),
    ]),
    _client("Hôtel Belle Époque SARL", ["belle-epoque.example"], "fr", 1, [
        ("Françoise", "Lefèvre", "f.lefevre"), ("Loïc", "Hervé", "l.herve"),
        ("Œnone", "Dubois", "o.dubois"),
    ]),
    _client("Clínica Santa Lucía", ["clinica-lucia.example", "santalucia-salud.example"], "es", 1, [
        ("José", "Muñoz", "jose.munoz"), ("María", "Núñez", "maria.nunez"),
        ("Iñaki", "Ibáñez", "inaki.ibanez"),
    ]),
    _client("ООО Северный Ветер", ["severny-veter.example"], "ru", 3, [
        ("Иван", "Петров", "i.petrov"), ("Ольга", "Смирнова", "o.smirnova"),
        ("Алексей", "Кузнецов", "a.kuznetsov"),
    ]),
    _client("上海明华贸易有限公司", ["minghua-trade.example"], "zh", 8, [
        ("伟", "王", "wang.wei"), ("芳", "李", "li.fang"), ("强", "张", "zhang.qiang"),
    ]),
    _client("Brightside Dental", ["brightside-dental.example"], "en", -5, [
        ("Emily", "Stone", "emily"), ("Marcus", "Reed", "marcus"), ("Priya", "Nair", "priya"),
    ]),
    _client("Kanzlei Schröder & Partner",
            ["schroeder-partner.example", "kanzlei-sp.example"], "de", 1, [
        ("Heike", "Schröder", "heike.schroeder"), ("Uwe", "Bäcker", "uwe.baecker"),
        ("Lena", "Fuß", "lena.fuss"),
    ]),
    _client("Pinecrest School District", ["pinecrest-schools.example"], "en", -7, [
        ("Daniel", "Okafor", "dokafor"), ("Grace", "Kim", "gkim"), ("Hannah", "Lee", "hlee"),
        ("Ian", "Novak", "inovak"),
    ]),
)

_COLLEAGUES = {
    "en": [("Sam", "Taylor"), ("Jordan", "Miles"), ("Chris", "Park"), ("Robin", "Hughes")],
    "de": [("Klaus", "Zöllner"), ("Petra", "Schäfer"), ("Jörg", "Maaß")],
    "sv": [("Linnéa", "Åberg"), ("Göran", "Nyström")],
    "fr": [("Hélène", "Moreau"), ("Gaëlle", "Perrin")],
    "es": [("Begoña", "Peña"), ("Tomás", "Gómez")],
    "ru": [("Дмитрий", "Волков"), ("Наталья", "Морозова")],
    "zh": [("敏", "刘"), ("军", "陈")],
}

# --- text of each language ----------------------------------------------------------------------

_SENTENCES = {
    "en": [
        "Our printer on the second floor stopped working this morning.",
        "Outlook keeps asking for my password since the update last night.",
        "Could you please reset the VPN token for our new accountant?",
        "The file server is very slow, opening a spreadsheet takes minutes.",
        "We get a certificate warning when we open the intranet page.",
        "The backup job reported an error again, see the log below.",
        "Please add the new hire to the shared mailbox and the Finance group.",
        "The laptop fan is loud and the battery drains within an hour.",
        "Teams calls drop after about ten minutes, only on the guest Wi-Fi.",
        "Thanks for the quick help yesterday, everything works now.",
        "The label printer in the warehouse prints blank pages.",
        "Can we schedule the firewall firmware upgrade for Saturday?",
    ],
    "de": [
        "Der Drucker im zweiten Stock druckt seit heute Morgen nicht mehr.",
        "Können Sie bitte das Passwort für Herrn Müller zurücksetzen?",
        "Die VPN-Verbindung bricht ständig ab, besonders im Homeoffice.",
        "Beim Öffnen der Buchhaltungssoftware erscheint eine Fehlermeldung.",
        "Grüße aus Köln, wir bräuchten dringend Unterstützung.",
        "Der Server im Keller macht seltsame Geräusche, bitte prüfen.",
        "Die Datensicherung von gestern Nacht ist fehlgeschlagen.",
        "Für die neue Kollegin benötigen wir ein Konto und einen Laptop.",
        "Das Telefon an der Rezeption klingelt nicht mehr bei externen Anrufen.",
        "Vielen Dank für die schnelle Hilfe, jetzt läuft alles wieder.",
    ],
    "sv": [
        "Hej! Skrivaren på kontoret fungerar inte sedan i morse.",
        "Kan ni återställa lösenordet för vår nya medarbetare?",
        "Servern är väldigt långsam när vi öppnar kalkylbladen.",
        "Säkerhetskopieringen misslyckades igen i natt, se loggen nedan.",
        "Tack för hjälpen i går, allt fungerar nu.",
        "Wi-Fi i mötesrummet på tredje våningen är borta.",
    ],
    "fr": [
        "Bonjour, l’imprimante de l’accueil ne fonctionne plus — merci de vérifier.",
        "Le serveur de fichiers est très lent depuis la mise à jour.",
        "Pourriez-vous réinitialiser le mot de passe de Mme Lefèvre ?",
        "La sauvegarde de cette nuit a échoué, voir le journal ci-dessous.",
        "Nous avons besoin d’un accès au réseau pour le nouveau réceptionniste.",
        "Le téléphone du hall sonne mais on n’entend rien : c’est gênant.",
        "Merci beaucoup pour votre aide rapide, tout fonctionne à présent.",
        "Le coût de la licence est de 120 € par an, pouvez-vous confirmer ?",
    ],
    "es": [
        "Buenos días, la impresora de recepción no funciona desde ayer.",
        "¿Podrían restablecer la contraseña del correo del señor Muñoz?",
        "El servidor está muy lento cuando abrimos las historias clínicas.",
        "La copia de seguridad de anoche falló otra vez.",
        "Necesitamos una cuenta nueva para la enfermera que empieza el lunes.",
        "Muchas gracias por la ayuda, ya funciona todo correctamente.",
        "El teléfono de la sala de espera no recibe llamadas externas.",
    ],
    "ru": [
        "Здравствуйте! Не работает принтер в бухгалтерии.",
        "Прошу сбросить пароль для учётной записи нового сотрудника.",
        "Сервер очень медленно открывает файлы после обновления.",
        "Резервное копирование ночью снова завершилось с ошибкой.",
        "Не проходит видеозвонок, связь обрывается через десять минут.",
        "Спасибо за быструю помощь, теперь всё работает.",
        "Нужно подключить новый ноутбук к сети и настроить почту.",
    ],
    "zh": [
        "您好，我们办公室的打印机无法使用。",
        "请帮忙重置新同事的邮箱密码，谢谢！",
        "服务器从昨天开始非常慢，打开文件要等很久。",
        "昨晚的备份任务又失败了，日志见下方。",
        "会议室的无线网络连接不上，请尽快处理。",
        "感谢您的及时帮助，现在一切正常。",
        "我们需要为新员工准备一台电脑和一个账号。",
    ],
}

_SUBJECTS = {
    "en": ["Printer not working", "Outlook password prompt", "VPN token reset",
           "File server very slow", "Certificate warning on intranet", "Backup failed again",
           "New hire: accounts needed", "Laptop overheating", "Teams calls dropping",
           "Firewall upgrade window"],
    "de": ["Drucker druckt nicht", "Passwort zurücksetzen", "VPN bricht ständig ab",
           "Fehlermeldung Buchhaltung", "Datensicherung fehlgeschlagen", "Neue Kollegin: Zugänge",
           "Telefonanlage Rezeption", "Server macht Geräusche"],
    "sv": ["Skrivaren fungerar inte", "Återställ lösenord", "Servern är långsam",
           "Säkerhetskopiering misslyckades", "Wi-Fi på tredje våningen"],
    "fr": ["Imprimante de l’accueil en panne", "Serveur très lent",
           "Réinitialisation du mot de passe",
           "Échec de la sauvegarde", "Accès réseau pour le réceptionniste", "Téléphone du hall"],
    "es": ["Impresora de recepción", "Restablecer contraseña", "Servidor muy lento",
           "Falló la copia de seguridad", "Cuenta nueva para enfermería"],
    "ru": ["Не работает принтер", "Сброс пароля", "Медленный сервер",
           "Ошибка резервного копирования",
           "Обрывается видеозвонок"],
    "zh": ["打印机无法使用", "重置邮箱密码", "服务器很慢", "备份失败", "会议室无线网络故障"],
}

_GREETING = {
    "en": ("Hi team,", "Best regards,"), "de": ("Hallo zusammen,", "Mit freundlichen Grüßen"),
    "sv": ("Hej,", "Vänliga hälsningar"), "fr": ("Bonjour,", "Cordialement,"),
    "es": ("Hola,", "Saludos cordiales,"), "ru": ("Добрый день,", "С уважением,"),
    "zh": ("您好，", "此致敬礼"),
}

# Charsets each language is written in (utf-8 everywhere), and reply prefixes its mail clients use.
_CHARSETS = {
    "en": ("us-ascii", "utf-8"),
    "de": ("iso-8859-1", "windows-1252", "utf-8"),
    "sv": ("iso-8859-1", "utf-8"),
    "fr": ("windows-1252", "utf-8"),
    "es": ("iso-8859-1", "windows-1252", "utf-8"),
    "ru": ("koi8-r", "utf-8"),
    "zh": ("gb2312", "utf-8"),
}
_REPLY_PREFIXES = {
    "en": ("Re:", "RE:"), "de": ("AW:", "Aw:", "Re:"), "sv": ("SV:", "Sv:", "Re:"),
    "fr": ("RE :", "Re:"), "es": ("RE:", "RV:", "Re:"), "ru": ("Re:", "RE:"), "zh": ("回复：", "Re:"),
}
_AUTO_SUBJECT = {
    "en": "Automatic reply: ", "de": "Automatische Antwort: ", "sv": "Automatiskt svar: ",
    "fr": "Réponse automatique : ", "es": "Respuesta automática: ", "ru": "Автоответ: ",
    "zh": "自动回复：",
}
_AUTO_BODY = {
    "en": "I am out of the office until Monday with limited access to e-mail.",
    "de": "Ich bin bis Montag nicht im Büro und habe nur eingeschränkt Zugriff auf E-Mails.",
    "sv": "Jag är tjänstledig till måndag och läser inte e-post.",
    "fr": "Je suis absent(e) jusqu’à lundi, accès limité à mes e-mails.",
    "es": "Estaré fuera de la oficina hasta el lunes con acceso limitado al correo.",
    "ru": "Я в отпуске до понедельника, доступ к почте ограничен.",
    "zh": "本人休假至周一，期间无法及时回复邮件。",
}
_MAILERS = (
    "Microsoft Outlook 16.0", "Apple Mail (2.3731.700.6)", "Mozilla Thunderbird 115.9.0",
    None, None, "Microsoft Office Outlook 12.0", "Foxmail 7.2.25", "The Bat! 10.5",
)
_ATTACHMENTS = (
    ("application/pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
     ("invoice_2026-03.pdf", "Prüfbericht.pdf", "error-report.pdf", "Rechnung 4711.pdf", "报告.pdf")),
    ("image/png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x05\x00\x00\x00\x02\xd0\x08\x06",
     ("screenshot.png", "image001.png", "Bildschirmfoto 2026-03-02 um 09.14.png", "ошибка.png")),
    ("application/zip", b"PK\x03\x04\x14\x00\x00\x00\x08\x00",
     ("logs.zip", "backup-log.zip", "export.zip")),
)


@dataclass(frozen=True)
class _TextBlock:
    """Wrapped lines of one language and the running character count, for fast slicing."""

    lines: tuple[str, ...]
    ends: tuple[int, ...]  # ends[i] = characters (with CRLF) of lines[0..i]

    def take(self, start: int, chars: int) -> list[str]:
        """Whole lines from ``start`` (wrapping around) until about ``chars`` characters."""
        out: list[str] = []
        while chars > 0:
            offset = self.ends[start - 1] if start else 0
            stop = bisect.bisect_left(self.ends, offset + chars, lo=start)
            stop = min(stop + 1, len(self.lines))
            out.extend(self.lines[start:stop])
            chars -= self.ends[stop - 1] - offset
            start = 0
        return out


def _wrap(paragraph: str, width: int) -> list[str]:
    """Greedy word wrap (CJK text has no spaces: cut it by characters)."""
    if " " not in paragraph:
        step = width // 2
        return [paragraph[i:i + step] for i in range(0, len(paragraph), step)]
    lines, current = [], ""
    for word in paragraph.split(" "):
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        lines.append(current)
    return lines


@lru_cache(maxsize=None)
def _text_block(language: str, chars: int = 150_000) -> _TextBlock:
    """A long, deterministic text of support sentences in ``language``, wrapped at 72 columns."""
    rng = random.Random(f"text-{language}")
    sentences = _SENTENCES[language]
    lines: list[str] = []
    count = 0
    while count < chars:
        paragraph = " ".join(rng.choice(sentences) for _ in range(rng.randint(2, 6)))
        for line in _wrap(paragraph, 72) + [""]:
            lines.append(line)
            count += len(line) + 2
    ends, running = [], 0
    for line in lines:
        running += len(line) + 2
        ends.append(running)
    return _TextBlock(tuple(lines), tuple(ends))


@lru_cache(maxsize=1)
def _binary_lines() -> tuple[bytes, ...]:
    """Base64 lines (76 characters = 57 raw bytes each) of one deterministic random blob.

    57 is a multiple of 3, so any run of consecutive lines is the valid encoding of the raw bytes
    it stands for: attachments are slices of this tuple behind an encoded file signature.
    """
    blob = random.Random("attachments").randbytes(57 * 3600)  # ~200 KB raw
    return tuple(
        binascii.b2a_base64(blob[i:i + 57], newline=False) for i in range(0, len(blob), 57)
    )


# --- one message --------------------------------------------------------------------------------


@dataclass
class _Record:
    """What later messages need to know about an earlier one."""

    seq: int
    kind: str
    client: int
    sender: tuple[str, str]  # (display name, address)
    message_id: str
    subject: str  # without reply prefix
    references: list[str]
    ticket: int | None  # expected ticket number of the thread


@dataclass
class _Plan:
    """Everything needed to render one message."""

    seq: int
    kind: str
    client: CorpusClient
    sender: tuple[str, str]
    subject: str
    message_id: str
    date: datetime
    target: int | None = None
    ticket: int | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    attachments: int = 0
    alternative: bool = False
    size: int = 4096


def _encode_header_text(text: str, charset: str) -> str:
    """A header value, RFC 2047-encoded when it is not plain ASCII."""
    if text.isascii():
        return text
    return Header(text, "utf-8" if charset == "us-ascii" else charset, maxlinelen=76).encode(
        linesep=CRLF
    )


def _charset_for(rng: random.Random, language: str, text: str) -> str:
    """A charset the language is written in that can represent ``text``."""
    options = list(_CHARSETS[language])
    rng.shuffle(options)
    for charset in options:
        try:
            text.encode(charset)
            return charset
        except UnicodeEncodeError:
            continue
    return "utf-8"


def _body_part(content_type: str, text: str, charset: str, cte: str) -> bytes:
    """One text/* MIME part with its headers, in ``charset`` and transfer encoding ``cte``."""
    data = text.encode(charset, errors="replace")
    if charset == "us-ascii" or data.isascii():
        cte = "7bit"
    if cte == "quoted-printable":
        payload = binascii.b2a_qp(data, istext=True)
    elif cte == "base64":
        encoded = base64.b64encode(data)
        payload = b"\r\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76)) + b"\r\n"
    else:
        payload = data
    head = (
        f"Content-Type: {content_type}; charset=\"{charset}\"{CRLF}"
        f"Content-Transfer-Encoding: {cte}{CRLF}{CRLF}"
    ).encode("ascii")
    return head + payload + (b"" if payload.endswith(b"\n") else b"\r\n")


def _attachment_part(rng: random.Random, raw_size: int) -> bytes:
    """A base64 binary attachment of about ``raw_size`` bytes with a real file signature."""
    content_type, signature, names = rng.choice(_ATTACHMENTS)
    name = rng.choice(names)
    lines = _binary_lines()
    head_raw = (signature + bytes(57))[:57]
    count = max(1, min(raw_size // 57, len(lines) - 1))
    start = rng.randrange(0, len(lines) - count + 1)
    body = b"\r\n".join((binascii.b2a_base64(head_raw, newline=False), *lines[start:start + count]))
    if name.isascii():
        disposition = f'attachment; filename="{name}"'
        ctype = f'{content_type}; name="{name}"'
    else:
        from urllib.parse import quote

        disposition = f"attachment; filename*=utf-8''{quote(name)}"
        ctype = f'{content_type}; name="{_encode_header_text(name, "utf-8")}"'
    head = (
        f"Content-Type: {ctype}{CRLF}Content-Disposition: {disposition}{CRLF}"
        f"Content-Transfer-Encoding: base64{CRLF}{CRLF}"
    ).encode("ascii")
    return head + body + b"\r\n"


def _multipart(subtype: str, boundary: str, parts: list[bytes]) -> bytes:
    head = f'Content-Type: multipart/{subtype};{CRLF} boundary="{boundary}"{CRLF}{CRLF}'
    chunks = [head.encode("ascii")]
    if subtype == "mixed":
        chunks.append(b"This is a multi-part message in MIME format.\r\n")
    for part in parts:
        chunks.append(f"{CRLF}--{boundary}{CRLF}".encode("ascii"))
        chunks.append(part)
    chunks.append(f"{CRLF}--{boundary}--{CRLF}".encode("ascii"))
    return b"".join(chunks)


def _html(lines: list[str]) -> str:
    body = "".join(f"<p>{html.escape(line)}</p>\r\n" if line else "<br>\r\n" for line in lines)
    return (
        "<html><head><meta http-equiv=\"Content-Type\" content=\"text/html\">"
        "<style>p{margin:0;font-family:Calibri,sans-serif;font-size:11pt}</style></head>\r\n"
        f"<body>\r\n{body}</body></html>\r\n"
    )


# Encoded bytes per character, roughly, to turn a byte budget into a character count.
_BYTES_PER_CHAR = {"en": 1.0, "de": 1.1, "sv": 1.15, "fr": 1.15, "es": 1.1, "ru": 2.6, "zh": 3.4}


def _render_body(rng: random.Random, plan: _Plan) -> bytes:
    """The MIME body (with its Content-Type headers) of ``plan``, close to ``plan.size`` bytes."""
    language = plan.client.language
    block = _text_block(language)
    hello, bye = _GREETING[language]
    name = plan.sender[0]
    budget = max(plan.size - 1400, 300)
    attachment_bytes = 0
    if plan.attachments:
        text_budget = rng.randint(400, 3000)
        attachment_bytes = max(budget - text_budget, 600)
        budget = text_budget
    text_budget = budget * 0.4 if plan.alternative else budget
    chars = int(text_budget / _BYTES_PER_CHAR[language])
    start = rng.randrange(len(block.lines))
    if plan.kind == "auto_reply":  # the out-of-office note, then the quoted message it answers
        lines = [_AUTO_BODY[language], "", bye, name, "", "-----"]
        lines += [f"> {q}" for q in block.take(start, max(chars, 60))]
    else:
        lines = [hello, ""] + block.take(start, max(chars, 60)) + ["", bye, name]
    if plan.kind == "reply":
        quote_start = rng.randrange(len(block.lines))
        quoted = block.take(quote_start, rng.randint(200, 1500))
        when = format_datetime(plan.date - timedelta(hours=rng.randint(1, 50)))
        lines += ["", f"On {when}, {SUPPORT_ADDRESS} wrote:"] + [f"> {q}" for q in quoted]
    text = CRLF.join(lines) + CRLF
    charset = _charset_for(rng, language, text)
    cte = rng.choice(("quoted-printable", "base64", "8bit")) if charset != "us-ascii" else "7bit"
    if language in ("ru", "zh") and cte == "quoted-printable":
        cte = "base64"
    part = _body_part("text/plain", text, charset, cte)
    if plan.alternative:
        html_part = _body_part("text/html", _html(lines), charset, "quoted-printable"
                               if cte != "8bit" else "8bit")
        part = _multipart("alternative", f"----=_alt_{plan.seq:06d}_{rng.getrandbits(40):010x}",
                          [part, html_part])
    if not plan.attachments:
        return part
    parts = [part]
    per_attachment = attachment_bytes * 3 // 4 // plan.attachments
    for _ in range(plan.attachments):
        parts.append(_attachment_part(rng, per_attachment))
    return _multipart("mixed", f"----=_mix_{plan.seq:06d}_{rng.getrandbits(40):010x}", parts)


def _render_headers(rng: random.Random, plan: _Plan) -> bytes:
    """The RFC 5322 header block of ``plan`` (without the X-Corpus-Kind/Seq lines)."""
    client = plan.client
    language = client.language
    charset = "utf-8" if rng.random() < 0.5 else _charset_for(rng, language, plan.subject)
    sender_name, sender_address = plan.sender
    sender_domain = sender_address.rsplit("@", 1)[1]
    tz = timezone(timedelta(hours=client.utc_offset_hours))
    date = plan.date.astimezone(tz)
    host_ip = f"198.51.100.{1 + CORPUS_CLIENTS.index(client) * 7 % 250}"
    received_at = format_datetime(plan.date + timedelta(seconds=rng.randint(1, 9)))
    lines = [
        f"Received: from mail.{sender_domain} (mail.{sender_domain} [{host_ip}]){CRLF}"
        f"\tby mx1.msp.example (Postfix) with ESMTPS id {rng.getrandbits(48):012X}{CRLF}"
        f"\tfor <{SUPPORT_ADDRESS}>; {received_at}",
        f"Received: from [10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}]"
        f" by mail.{sender_domain} with ESMTPSA; {format_datetime(date)}",
    ]
    if plan.kind == "auto_reply":
        lines.append("Auto-Submitted: auto-replied")
        if rng.random() < 0.5:
            lines.append("X-Auto-Response-Suppress: All")
        if rng.random() < 0.3:
            lines.append("X-Autoreply: yes")
    encoded_name = _encode_header_text(sender_name, _charset_for(rng, language, sender_name)
                                       if not sender_name.isascii() else "us-ascii")
    if sender_name.isascii():
        from_value = formataddr((sender_name, sender_address))
    else:
        from_value = f"{encoded_name} <{sender_address}>"
    lines += [
        f"From: {from_value}",
        f"To: MSP Support <{SUPPORT_ADDRESS}>",
        f"Subject: {_encode_header_text(plan.subject, charset)}",
        f"Date: {format_datetime(date)}",
        f"Message-ID: {plan.message_id}",
    ]
    if plan.in_reply_to:
        lines.append(f"In-Reply-To: {plan.in_reply_to}")
    if plan.references:
        lines.append("References: " + f"{CRLF} ".join(plan.references))
    lines.append("MIME-Version: 1.0")
    mailer = rng.choice(_MAILERS)
    if mailer:
        lines.append(f"X-Mailer: {mailer}")
    return (CRLF.join(lines) + CRLF).encode("ascii")


def _corpus_headers(kind: str, seq: int, target: int | None, ticket: int | None) -> bytes:
    """The X-Corpus-* lines that open every message (the rest is what a real sender wrote)."""
    lines = [f"X-Corpus-Kind: {kind}", f"X-Corpus-Seq: {seq}"]
    if target is not None:
        lines.append(f"X-Corpus-Target: {target}")
    if ticket is not None:
        lines.append(f"X-Corpus-Ticket: {ticket}")
    return (CRLF.join(lines) + CRLF).encode("ascii")


def _render(rng: random.Random, plan: _Plan) -> bytes:
    """Header block + body, resized once if the estimate missed the 2–200 KB range."""
    for _ in range(4):
        state = rng.getstate()
        message = _render_headers(rng, plan) + _render_body(rng, plan)
        size = len(message) + 48
        if MIN_SIZE <= size <= MAX_SIZE:
            return message
        rng.setstate(state)
        plan.size = int(plan.size * (plan.size / size)) if size else plan.size
        plan.size = max(min(plan.size, MAX_SIZE - 3000), MIN_SIZE + 600)
    return message


# --- the corpus ---------------------------------------------------------------------------------


class _Corpus:
    """The state of one generation run: earlier messages that later ones refer to."""

    def __init__(self, seed: int):
        self.seed = seed
        self.rng = random.Random(seed)
        self.records: list[_Record] = []
        self.threads: list[int] = []  # indexes into records of messages a reply may answer
        self.openers: list[int] = []  # indexes of "new" messages (they own a ticket)
        self.recent: deque[tuple[int, bytes]] = deque(maxlen=64)  # (seq, body) for duplicates
        self.next_ticket = 1
        self.start = datetime(2026, 3, 2, 7, 30, tzinfo=timezone.utc)

    def _sender(self, client_index: int) -> tuple[str, str]:
        client = CORPUS_CLIENTS[client_index]
        rng = self.rng
        if rng.random() < P_UNKNOWN_COLLEAGUE:
            first, last = rng.choice(_COLLEAGUES[client.language])
            domain = rng.choice(client.domains)
            subdomain = rng.choice(["mail.", "eu.mail."]) if rng.random() < 0.2 else ""
            local = f"{first[0]}.{last}".lower()
            if not local.isascii():
                local = f"staff{rng.randint(1, 99)}"
            email = f"{local}@{subdomain}{domain}"
        else:
            contact = rng.choice(client.contacts)
            first, last, email = contact.first_name, contact.last_name, contact.email
            if rng.random() < 0.1:
                local, domain = email.split("@")
                email = f"{local.capitalize()}@{domain.upper()}"  # case differs, same person
        name = f"{last}{first}" if client.language == "zh" else f"{first} {last}"
        return name, email

    def _message_id(self, seq: int, sender: str) -> str:
        domain = sender.rsplit("@", 1)[1].lower()
        return f"<{self.rng.getrandbits(64):016x}.{self.seed}.{seq}@mail.{domain}>"

    def _choose_kind(self) -> str:
        r = self.rng.random()
        if r < P_REPLY:
            return "reply" if self.threads else "new"
        r -= P_REPLY
        if r < P_AUTO_REPLY:
            return "auto_reply" if self.threads else "new"
        r -= P_AUTO_REPLY
        if r < P_DUPLICATE:
            return "duplicate" if self.recent else "new"
        r -= P_DUPLICATE
        if r < P_WRONG_CLIENT_TAG:
            return "wrong_client_tag" if len(self.openers) >= 2 else "new"
        return "new"

    def _recent_thread(self) -> _Record:
        window = self.threads[-300:]
        return self.records[self.rng.choice(window)]

    def message(self, seq: int) -> bytes:
        rng = self.rng
        kind = self._choose_kind()
        date = self.start + timedelta(seconds=seq * 41 + rng.randint(0, 40))
        if kind == "duplicate":
            target_seq, rest = rng.choice(self.recent)
            original = self.records[target_seq]
            self.records.append(_Record(seq, kind, original.client, original.sender,
                                        original.message_id, original.subject, [], None))
            return _corpus_headers(kind, seq, target_seq, None) + rest

        if kind == "new":
            client_index = rng.randrange(len(CORPUS_CLIENTS))
            sender = self._sender(client_index)
            subject = rng.choice(_SUBJECTS[CORPUS_CLIENTS[client_index].language])
            if rng.random() < 0.3:
                label = rng.choice(["urgent", "Ref", "Case", "PO"])
                subject += f" ({label} {rng.randint(100, 99999)})"
            plan = _Plan(seq, kind, CORPUS_CLIENTS[client_index], sender, subject,
                         self._message_id(seq, sender[1]), date, ticket=self.next_ticket)
            record = _Record(seq, kind, client_index, sender, plan.message_id, subject, [],
                             self.next_ticket)
            self.next_ticket += 1
        elif kind in ("reply", "auto_reply"):
            parent = self._recent_thread()
            client_index = parent.client
            client = CORPUS_CLIENTS[client_index]
            sender = parent.sender if rng.random() < 0.6 else self._sender(client_index)
            if kind == "reply":
                prefix = rng.choice(_REPLY_PREFIXES[client.language])
                tag = f"[#{parent.ticket}] " if rng.random() < 0.4 else ""
                subject = f"{prefix} {tag}{parent.subject}"
            else:
                subject = _AUTO_SUBJECT[client.language] + parent.subject
            references = (parent.references + [parent.message_id])[-10:]
            plan = _Plan(seq, kind, client, sender, subject, self._message_id(seq, sender[1]),
                         date, target=parent.seq, in_reply_to=parent.message_id,
                         references=references)
            record = _Record(seq, kind, client_index, sender, plan.message_id, parent.subject,
                             references, parent.ticket)
        else:  # wrong_client_tag: a reply carrying the tag of another client's ticket
            opener = self.records[rng.choice(self.openers[-500:])]
            others = [i for i in range(len(CORPUS_CLIENTS)) if i != opener.client]
            client_index = rng.choice(others)
            client = CORPUS_CLIENTS[client_index]
            sender = self._sender(client_index)
            prefix = rng.choice(_REPLY_PREFIXES[client.language])
            subject = f"{prefix} [#{opener.ticket}] {opener.subject}"
            plan = _Plan(seq, kind, client, sender, subject, self._message_id(seq, sender[1]),
                         date, target=opener.seq, ticket=self.next_ticket)
            record = _Record(seq, kind, client_index, sender, plan.message_id, opener.subject,
                             [], self.next_ticket)
            self.next_ticket += 1

        plan.alternative = rng.random() < P_ALTERNATIVE
        if kind == "auto_reply":
            low, high = MIN_SIZE + 600, 8_000
        else:
            plan.attachments = (1 if rng.random() < 0.75 else rng.randint(2, 3)) \
                if rng.random() < P_ATTACHMENT else 0
            low, high = (12_000, 195_000) if plan.attachments else (MIN_SIZE + 300, 32_000)
        plan.size = int(low * (high / low) ** rng.random())  # log-uniform
        rest = _render(rng, plan)
        self.records.append(record)
        if kind in ("new", "reply"):
            self.threads.append(seq)
            self.recent.append((seq, rest))
        if kind == "new":
            self.openers.append(seq)
        return _corpus_headers(kind, seq, plan.target, plan.ticket) + rest


def generate(n: int, *, seed: int = 1) -> Iterator[bytes]:
    """Yield ``n`` raw messages; the same ``seed`` always yields the same bytes."""
    corpus = _Corpus(seed)
    for seq in range(n):
        yield corpus.message(seq)


def corpus_kind(raw: bytes) -> tuple[str, int]:
    """``(kind, seq)`` from the X-Corpus-Kind/Seq lines at the top of a corpus message."""
    head = raw[:200].split(b"\r\n", 2)
    return head[0].split(b":", 1)[1].strip().decode(), int(head[1].split(b":", 1)[1])


def write_corpus(directory: str | Path, n: int, *, seed: int = 1) -> list[Path]:
    """Write ``n`` messages as ``directory/000000.eml`` …; return the paths in corpus order."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for seq, raw in enumerate(generate(n, seed=seed)):
        path = directory / f"{seq:06d}.eml"
        path.write_bytes(raw)
        paths.append(path)
    return paths


# --- the database side --------------------------------------------------------------------------


def seed_database(engine) -> None:
    """Create the corpus clients, their domains and contacts (first one primary) in ``engine``.

    The schema must exist (``models.db.migrate(url)``). Idempotent: clients that already exist by
    name are left alone.
    """
    from sqlalchemy import select

    from models import Client, ClientDomain, Contact
    from models.db import session_scope

    with session_scope(engine) as session:
        existing = {name.lower() for name in session.scalars(select(Client.name))}
        for corpus_client in CORPUS_CLIENTS:
            if corpus_client.name.lower() in existing:
                continue
            client = Client(name=corpus_client.name)
            session.add(client)
            session.flush()
            for domain in corpus_client.domains:
                session.add(ClientDomain(client_id=client.id, domain=domain.lower()))
            for position, contact in enumerate(corpus_client.contacts):
                session.add(Contact(
                    client_id=client.id, first_name=contact.first_name,
                    last_name=contact.last_name, email=contact.email.lower(),
                    is_primary=position == 0,
                ))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.corpus", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--n", type=int, default=1000, help="number of messages (default 1000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True, help="directory for NNNNNN.eml files")
    args = parser.parse_args(argv)
    paths = write_corpus(args.out, args.n, seed=args.seed)
    total = sum(p.stat().st_size for p in paths)
    print(f"wrote {len(paths)} messages, {total / 1e6:.1f} MB, to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
