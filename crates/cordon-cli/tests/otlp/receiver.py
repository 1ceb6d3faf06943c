"""An OTLP/HTTP receiver for tests/otlp.rs, decoding with the official OpenTelemetry protobuf
classes (opentelemetry-proto, pinned by scripts/setup-tests): what it prints is what any
collector would read from the same bytes.

receiver.py [--cert PEM --key PEM] [--refuse N [--retry-after S]]: listens on a free loopback
port, prints `listening PORT`, then one JSON line per span or log record received (ids in hex,
attributes as a flat object), flushed. With --refuse N, the first N requests are answered 503 with
Retry-After: S (default 1; each said as a `refused` line), as a collector that is overloaded or
restarting answers.
"""

import argparse
import json
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


def attrs(kvs):
    out = {}
    for kv in kvs:
        v = MessageToDict(kv.value)
        out[kv.key] = next(iter(v.values())) if v else None
    return out


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def spans(req):
    for rs in req.resource_spans:
        resource = attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                emit({
                    "signal": "span",
                    "resource": resource,
                    "scope": ss.scope.name,
                    "name": s.name,
                    "trace_id": s.trace_id.hex(),
                    "span_id": s.span_id.hex(),
                    "parent_span_id": s.parent_span_id.hex(),
                    "start": s.start_time_unix_nano,
                    "end": s.end_time_unix_nano,
                    "attributes": attrs(s.attributes),
                    "links": [{"trace_id": l.trace_id.hex(), "span_id": l.span_id.hex(),
                               "attributes": attrs(l.attributes)} for l in s.links],
                })


def logs(req):
    for rl in req.resource_logs:
        resource = attrs(rl.resource.attributes)
        for sl in rl.scope_logs:
            for r in sl.log_records:
                emit({
                    "signal": "log",
                    "resource": resource,
                    "time": r.time_unix_nano,
                    "severity": r.severity_text,
                    "trace_id": r.trace_id.hex(),
                    "span_id": r.span_id.hex(),
                    "body": r.body.string_value,
                    "attributes": attrs(r.attributes),
                })


REFUSE = {"left": 0, "after": "1"}
REFUSE_LOCK = threading.Lock()


def refuse_this_one():
    with REFUSE_LOCK:
        if REFUSE["left"] > 0:
            REFUSE["left"] -= 1
            return True
    return False


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if refuse_this_one():
            emit({"signal": "refused", "path": self.path})
            return self.answer(503, b"", {"Retry-After": REFUSE["after"]})
        if self.headers.get("Content-Type") != "application/x-protobuf":
            return self.answer(415, b"")
        if self.path.endswith("/v1/traces"):
            req = ExportTraceServiceRequest.FromString(body)
            spans(req)
            resp = ExportTraceServiceResponse()
        elif self.path.endswith("/v1/logs"):
            req = ExportLogsServiceRequest.FromString(body)
            logs(req)
            resp = ExportLogsServiceResponse()
        else:
            return self.answer(404, b"")
        emit({"signal": "request", "path": self.path, "auth": self.headers.get("Authorization")})
        self.answer(200, resp.SerializeToString())

    def answer(self, code, body, extra=None):
        self.send_response(code)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--refuse", type=int, default=0)
    p.add_argument("--retry-after", type=int, default=1)
    a = p.parse_args()
    REFUSE["left"] = a.refuse
    REFUSE["after"] = str(a.retry_after)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if a.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    emit({"signal": "listening", "port": srv.server_address[1]})
    srv.serve_forever()


if __name__ == "__main__":
    main()
