from coredump.report.sanitize import clean_text, clean_xml, safe_href, show_controls

HOSTILE = ("\x1b[31mred\x1b[0m", "\x1b]0;owned title\x07", "\x1b]8;;http://x\x1b\\link", "\x9b2J",
           "bell\x07", "cr\rreturn", "nul\x00", "del\x7f", "\u202egnp.exe", "\x1bc")


def test_clean_text_removes_every_escape_and_control():
    for value in HOSTILE:
        out = clean_text(value)
        assert not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f for c in out), repr(out)
        assert "\u202e" not in out


def test_clean_text_keeps_visible_text():
    assert clean_text("\x1b[1;31mstore_value\x1b[0m") == "store_value"
    assert clean_text("\x1b]0;owned title\x07main") == "main"
    assert clean_text("operator<<(std::ostream&, “x”)") == "operator<<(std::ostream&, “x”)"


def test_clean_text_newlines():
    assert clean_text("a\nb\tc") == "a b c"
    assert clean_text("a\r\nb\x1b[2Kc", keep_newlines=True) == "a\nbc"
    assert clean_text(None) == ""


def test_clean_xml_drops_characters_xml_forbids():
    import xml.etree.ElementTree as ET

    text = clean_xml("a\x00b\x01c\x1b[31md\ufffee\ud800f")
    assert text == "abcde\\ud800f"  # a lone surrogate is shown escaped (jsondoc's rule), not dropped
    ET.fromstring(f"<x>{text}</x>")


def test_safe_href():
    assert safe_href("001-42/report.html") == "001-42/report.html"
    assert safe_href("../index.html") == "../index.html"
    assert safe_href('a"><img src=x>/r.html') == "a%22%3E%3Cimg%20src%3Dx%3E/r.html"
    for bad in ("javascript:alert(1)", "JavaScript:x", "/etc/passwd", "http://evil/x", "a//b", "", None, 3):
        assert safe_href(bad) is None, bad


def test_show_controls_escapes_visibly():
    from coredump.report.sanitize import show_controls

    for value in HOSTILE:
        out = show_controls(value)
        assert not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f for c in out), repr(out)
        assert "\u202e" not in out
    assert show_controls("esc\x1b[31mprog") == "esc\\x1b[31mprog"
    assert show_controls("\u202egnp.exe") == "\\u202egnp.exe"
    assert show_controls("a\r\nb\tc") == "a\nb c"
    assert show_controls(None) == ""


def test_undecodable_bytes_are_shown_escaped_by_every_printer():
    odd = b"caf\xe9\xff".decode("utf-8", "surrogateescape")
    for clean in (clean_text, show_controls, clean_xml):
        assert clean(odd) == "caf\\xe9\\xff"
        clean(odd).encode("utf-8")
