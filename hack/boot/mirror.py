#!/usr/bin/env python3
"""The boot test's loopback mirror: serves DIR over HTTP on 127.0.0.1 (the
guest reaches it as 10.0.2.2 through qemu's user network) and appends one
JSON line per request to LOG: host time, path, status and bytes sent. The
harness sums the bytes of the requests made during each boot.

Usage: mirror.py DIR LOG PORTFILE   (writes the chosen port to PORTFILE)"""
import functools, http.server, json, os, sys, threading, time

DIR, LOG, PORTFILE = sys.argv[1:4]
lock = threading.Lock()

class Handler(http.server.SimpleHTTPRequestHandler):
    def copyfile(self, source, outputfile):
        n = 0
        while True:
            b = source.read(1 << 20)
            if not b:
                break
            outputfile.write(b)
            n += len(b)
        self._sent = n

    def log_request(self, code="-", size="-"):
        pass

    def log_message(self, *a):
        pass

    def do_GET(self):
        self._sent = 0
        super().do_GET()
        try:
            with lock, open(LOG, "a") as f:
                f.write(json.dumps({"time": time.time(), "client": self.client_address[0], "path": self.path,
                                    "bytes": self._sent}) + "\n")
        except OSError as e:
            # An unlogged download would read as none: stop serving instead.
            sys.stderr.write(f"mirror: cannot log to {LOG}: {e}\n")
            os._exit(3)

srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=DIR))
with open(PORTFILE + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.replace(PORTFILE + ".tmp", PORTFILE)
srv.serve_forever()
