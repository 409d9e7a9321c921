#!/usr/bin/env python3
"""Records Swift's answers to the differential cases as fixtures.

    tests/swift_reference/record.py PROXY_URL CASES.json OUT.json

CASES.json (tests/swift_reference/cases/*.json) lists requests; OUT.json
(tests/fixtures/swift/*.json) is the same list with Swift's answer to each request: status,
every header (names as sent on the wire) and body. tests/tests/swift_fidelity.rs replays the
requests against the origin and compares what each case's `compare` names.

Requests go over raw sockets so paths (`%FF`, `%00`) and headers (`Transfer-Encoding: gzip`)
reach the server exactly as written. Placeholders: `{acct}` and `{acct2}` (the account ids
AUTH_test and AUTH_test2), `{a}` and `{a2}` (the bare account names, as ACLs name them),
`{past}`, `{future}`, `{far_future}` (Unix times). The admin test:tester's token is added as
X-Auth-Token unless the request says `"anon": true` or `"as"`: `"tester3"` (test's plain
user, no .admin), `"tester2"` (test2's admin) or `"reseller"` (admin:admin, a
.reseller_admin).
"""
import json
import socket
import sys
import time
import urllib.parse

ACCT = "AUTH_test"
USERS = {"tester": ("test:tester", "testing"), "tester3": ("test:tester3", "testing3"),
         "tester2": ("test2:tester2", "testing2"), "reseller": ("admin:admin", "admin")}


def fill(s, now):
    return (s.replace("{acct}", ACCT).replace("{acct2}", ACCT + "2")
             .replace("{a}", "test").replace("{a2}", "test2")
             .replace("{past}", str(now - 3600))
             .replace("{future}", str(now + 3600))
             .replace("{far_future}", str(now + 100 * 365 * 86400)))


def send(addr, req, token, now):
    method = req.get("method", "GET")
    path = fill(req["path"], now)
    body = fill(req.get("body", ""), now).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {addr[0]}:{addr[1]}"]
    if isinstance(token, dict):
        token = token[req.get("as", "tester")]
    if not req.get("anon") and token:
        lines.append(f"X-Auth-Token: {token}")
    names = set()
    for k, v in req.get("headers", []):
        names.add(k.lower())
        lines.append(f"{k}: {fill(v, now)}")
    if "transfer-encoding" not in names and not req.get("no_length") and (
            body or method in ("PUT", "POST")):
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    s = socket.create_connection(addr)
    s.sendall(raw)
    buf = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    head, _, rest = buf.partition(b"\r\n\r\n")
    hl = head.decode("latin-1").split("\r\n")
    status = int(hl[0].split()[1])
    headers = [tuple(x.split(": ", 1)) for x in hl[1:] if x]
    if any(k.lower() == "transfer-encoding" and "chunked" in v for k, v in headers):
        out = b""
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size.split(b";")[0], 16)
            if n == 0:
                break
            out += rest[:n]
            rest = rest[n + 2:]
        rest = out
    if method == "HEAD":
        rest = b""
    return {"status": status, "headers": headers, "body": rest.decode("utf-8", "replace")}


def main():
    url, cases_path, out_path = sys.argv[1:4]
    u = urllib.parse.urlsplit(url)
    addr = (u.hostname, u.port)
    token = {}
    for who, (user, key) in USERS.items():
        auth = send(addr, {"path": "/auth/v1.0", "anon": True,
                           "headers": [["X-Auth-User", user], ["X-Auth-Key", key]]},
                    None, 0)
        token[who] = dict((k.lower(), v) for k, v in auth["headers"])["x-auth-token"]
    spec = json.load(open(cases_path))
    now = int(time.time())
    for case in spec["cases"]:
        for step in case.get("setup", []):
            got = send(addr, step, token, now)
            if got["status"] >= 300:
                sys.exit(f"{case['name']}: setup {step} got {got['status']}")
        case["response"] = send(addr, case["request"], token, now)
    import subprocess
    version = subprocess.run(["swift-proxy-server", "--version"], capture_output=True,
                             text=True).stdout.strip() or "swift 2.38"
    spec["recorded_from"] = (f"{version} all-in-one (tests/swift_reference/run.sh) by "
                             "tests/swift_reference/record.py")
    with open(out_path, "w") as f:
        json.dump(spec, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
