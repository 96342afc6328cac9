"""formats/nginxconf.py: nginx.conf as a tree of directives with lines."""

from __future__ import annotations

import pytest

from omnigen.formats.nginxconf import NginxSyntaxError, parse_nginx

TEXT = """events { worker_connections 10; }
http {
    upstream kamailio {
        server kamailio:5066;  # the WebSocket port
    }
    server {
        listen 8443 ssl;
        location = /ws {
            proxy_pass http://kamailio;
            add_header X-Note "a ; b { c }";
        }
    }
}
"""


def test_tree_with_lines_and_quoted_words() -> None:
    root = parse_nginx(TEXT)
    [upstream] = root.find("upstream")
    assert (upstream.args, upstream.line) == (("kamailio",), 3)
    [server] = upstream.find("server")
    assert (server.args, server.line) == (("kamailio:5066",), 4)
    [location] = root.find("location")
    assert location.args == ("=", "/ws") and location.line == 8
    proxy = location.first("proxy_pass")
    assert proxy is not None and proxy.args == ("http://kamailio",)
    note = location.first("add_header")
    assert note is not None and note.args == ("X-Note", "a ; b { c }")
    assert location.parent is not None and location.parent.name == "server"


@pytest.mark.parametrize(
    ("text", "line"),
    [("http {\n  listen 80;\n", 3), ("listen 80\n}\n", 2), ('a "b;\n', 1), ("}\n", 1)],
    ids=["unclosed-block", "stray-brace", "unterminated-quote", "leading-brace"],
)
def test_syntax_errors_name_a_line(text: str, line: int) -> None:
    with pytest.raises(NginxSyntaxError) as error:
        parse_nginx(text)
    assert error.value.line == line
