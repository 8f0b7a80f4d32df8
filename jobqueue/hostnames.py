"""Internationalized host names made ASCII as browsers make them (WHATWG URL: UTS #46, non-transitional).

`bücher.de` becomes `xn--bcher-kva.de`, a fullwidth `EXAMPLE.com` becomes `example.com` and `faß.de` keeps its ß
(`xn--fa-hia.de`). Symbols browsers accept (`☃.net`) are accepted too, which the stricter IDNA 2008
of the `idna` package alone would refuse. A name that cannot be made ASCII raises ValueError with the
reason, worded for users. `check_dns_length` refuses what DNS cannot carry (WHATWG's VerifyDnsLength), which
no fetch could ever resolve.
"""

from __future__ import annotations

import re
import unicodedata

import idna

__all__ = ["check_dns_length", "to_ascii"]

# What a host name may not contain once mapped (WHATWG "forbidden domain code points"), e.g. a fullwidth
# solidus that maps to "/".
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f#%/:<>?@\[\\\]^|]")
_JOINERS = ("\u200c", "\u200d")
_RTL = frozenset(("R", "AL", "AN"))
MAX_NAME = 253  # octets of a whole name, without the root's trailing dot (RFC 1035: 255 in wire form)
MAX_LABEL = 63


def to_ascii(host: str) -> str:
    """The ASCII (punycode) form of a lower-cased host name; ValueError says why one cannot be had."""
    if host.isascii() and "xn--" not in host:
        return host
    try:
        mapped = idna.uts46_remap(host, std3_rules=False, transitional=False)
    except idna.IDNAError as exc:
        raise ValueError(_reason(exc)) from None
    bad = _FORBIDDEN.search(mapped)
    if bad is not None:
        raise ValueError(f"it maps to {mapped!r}, which holds {bad.group()!r}, a character no host name may have")
    labels = [_unicode_label(label) for label in mapped.split(".")]
    bidi = any(unicodedata.bidirectional(ch) in _RTL for label in labels for ch in label)
    out = []
    for label in labels:
        if bidi and label and not _bidi_ok(label):
            raise ValueError(f"the label {label!r} mixes left-to-right and right-to-left text in a way "
                             "RFC 5893 does not allow")
        out.append(label if label.isascii() else "xn--" + label.encode("punycode").decode("ascii"))
    return ".".join(out)


def check_dns_length(host: str) -> None:
    """Refuse an ASCII host name DNS cannot carry: over 253 octets, a label over 63 or an empty one (`a..b`, a
    leading dot); a single trailing dot names the root and is fine. ValueError says which."""
    name = host[:-1] if host.endswith(".") else host
    if len(name) > MAX_NAME:
        raise ValueError(f"it has {len(name)} characters in its ASCII form; DNS allows at most {MAX_NAME}")
    for label in name.split("."):
        if len(label) > MAX_LABEL:
            raise ValueError(f"its label {label[:20] + '...'!r} has {len(label)} characters in its ASCII form; "
                             f"DNS allows at most {MAX_LABEL} per label")
        if not label:
            raise ValueError("it has an empty label (a dot first, or two dots in a row)")


def _unicode_label(label: str) -> str:
    """A label as Unicode, checked by the validity criteria of UTS #46 (an `xn--` label decoded first)."""
    if label.lower().startswith("xn--"):
        try:
            decoded = label[4:].encode("ascii").decode("punycode")
        except (UnicodeError, ValueError):
            raise ValueError(f"the label {label!r} is not valid punycode") from None
        if not decoded or decoded.isascii():
            raise ValueError(f"the label {label!r} is not valid punycode")
        try:
            if idna.uts46_remap(decoded, std3_rules=False, transitional=False) != decoded:
                raise ValueError(f"the label {label!r} decodes to {decoded!r}, which is not in its mapped form")
        except idna.IDNAError as exc:
            raise ValueError(f"the label {label!r} decodes to {decoded!r}: {_reason(exc)}") from None
        label = decoded
    if label.isascii():
        return label
    if unicodedata.normalize("NFC", label) != label:
        raise ValueError(f"the label {label!r} is not in Unicode normal form C")
    if unicodedata.category(label[0]).startswith("M"):
        raise ValueError(f"the label {label!r} begins with a combining mark")
    for pos, ch in enumerate(label):
        if ch in _JOINERS and not idna.valid_contextj(label, pos):
            raise ValueError(f"the label {label!r} has a zero-width joiner where none may be")
    return label


def _bidi_ok(label: str) -> bool:
    try:
        return bool(idna.check_bidi(label, check_ltr=True))
    except idna.IDNAError:
        return False


def _reason(exc: idna.IDNAError) -> str:
    text = str(exc)
    found = re.search(r"Codepoint (U\+[0-9A-F]+)", text)
    if found is not None:
        return f"it holds the character {found.group(1)}, which no host name may have"
    return text[:1].lower() + text[1:]
