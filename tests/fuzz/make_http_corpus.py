#!/usr/bin/python3
"""Write the HTTP fuzzer's seed corpus (tests/fuzz/corpus/http/).

Each seed is the raw bytes a client sends to the ops listener: requests
Prometheus, curl, load balancers and browsers send, the WebSocket opening
handshake of RFC 6455 section 1.3, and the hostile shapes the parser must
refuse. Run it again after editing; the seeds are committed.
"""
import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "http")

CRLF = b"\r\n"


def req(line, *headers, body=b""):
    return line.encode() + CRLF + b"".join(h.encode() + CRLF for h in headers) + CRLF + body


seeds = {}

seeds["get_metrics"] = req(
    "GET /metrics HTTP/1.1",
    "Host: 127.0.0.1:9100",
    "User-Agent: Prometheus/2.42.0",
    "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
    "Accept-Encoding: gzip",
    "X-Prometheus-Scrape-Timeout-Seconds: 10",
)
seeds["get_query"] = req("GET /metrics?name[]=starling_up&x=%20y#frag HTTP/1.1", "Host: a")
seeds["head_healthz"] = req("HEAD /healthz HTTP/1.1", "Host: localhost")
seeds["post_body"] = req("POST /readyz HTTP/1.1", "Content-Length: 5",
                         "Content-Type: text/plain", body=b"hello")
seeds["http10_keepalive"] = req("GET /readyz HTTP/1.0", "Connection: Keep-Alive")
seeds["http11_close"] = req("GET / HTTP/1.1", "connection: CLOSE", "host: x")
seeds["absolute_form"] = req("GET http://node1:9100/metrics?a=1 HTTP/1.1", "Host: node1")
seeds["websocket_rfc6455"] = req(
    "GET /mqtt HTTP/1.1",
    "Host: server.example.com",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Origin: http://example.com",
    "Sec-WebSocket-Protocol: mqtt",
    "Sec-WebSocket-Version: 13",
)
seeds["websocket_folded"] = req(
    "GET /mqtt HTTP/1.1",
    "uPgRaDe: WebSocket",
    "Upgrade: h2c",
    "CONNECTION: keep-alive, Upgrade",
    "sec-websocket-key: \t dGhlIHNhbXBsZSBub25jZQ== ",
    "Sec-WebSocket-Protocol: mqtt ,  mqttv3.1",
    "Sec-WebSocket-Protocol: x,",
    "   y",
    "Sec-WebSocket-Version: 256",
)
seeds["pipelined"] = (req("GET /healthz HTTP/1.1", "Host: a") +
                      req("HEAD /readyz HTTP/1.1", "Host: a") +
                      b"GET /metr")
seeds["bare_lf"] = b"\r\nGET /a HTTP/1.1\nHost: x\n\nrest"
seeds["chunked"] = req("POST / HTTP/1.1", "Transfer-Encoding: chunked",
                       body=b"5\r\nhello\r\n0\r\n\r\n")
seeds["truncated"] = req("GET /metrics HTTP/1.1", "Host: 127.0.0.1:9100")[:-9]
seeds["garbage_tls"] = bytes.fromhex("160301020001000001fc0303") + b"\x00" * 8
seeds["garbage_mqtt"] = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"
seeds["nul_in_header"] = b"GET / HTTP/1.1\r\nSec-WebSocket-Key: a\x00b\r\nX-A: a\x00b\r\n\r\n"
seeds["bare_cr"] = b"GET / HTTP/1.1\r\nHost : x\r\n\rX"
seeds["oversize_header"] = req("GET / HTTP/1.1", "Cookie: " + "c" * 9000)
seeds["long_path"] = req("GET /" + "a" * 300 + "?" + "q" * 40 + " HTTP/1.1", "Host: x")
seeds["long_ws_key"] = req("GET / HTTP/1.1", "Sec-WebSocket-Key: " + "k" * 64,
                           "Content-Length: 4294967296")
seeds["smuggling"] = req("POST / HTTP/1.1", "Content-Length: 5", "Transfer-Encoding: chunked",
                         "Content-Length: 6")

os.makedirs(OUT, exist_ok=True)
for name, data in sorted(seeds.items()):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print(f"wrote {len(seeds)} seeds to {OUT}")
