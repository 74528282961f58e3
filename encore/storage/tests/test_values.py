"""StringValue, FileValue and URLValue."""

from __future__ import annotations

import http.server
import os
import pathlib
import tempfile
import threading
import time
import unittest

from encore.storage.abstract_store import AuthorizationError
from encore.storage.file_value import FileValue
from encore.storage.string_value import StringValue
from encore.storage.url_value import URLValue


class StringValueTest(unittest.TestCase):
    def test_attributes(self):
        before = time.time()
        value = StringValue(b"hello", {"a": [1]})
        self.assertEqual(value.size, 5)
        self.assertTrue(before <= value.created == value.modified <= time.time())
        self.assertEqual(StringValue(b"", None, 1.0, 2.0).modified, 2.0)

    def test_data_is_cached_and_metadata_copied(self):
        value = StringValue(b"hello", {"a": [1]})
        self.assertIs(value.data, value.data)
        self.assertEqual(value.data.read(), b"hello")
        self.assertEqual(value.data.read(), b"")
        value.metadata["a"].append(2)
        self.assertEqual(value.metadata, {"a": [1]})

    def test_range_end_exclusive(self):
        value = StringValue(b"test2\n")
        self.assertEqual(value.range(1, 3).read(), b"es")
        self.assertEqual(value.range(None, 2).read(), b"te")
        self.assertEqual(value.range(4).read(), b"2\n")

    def test_bad_input(self):
        with self.assertRaises(TypeError):
            StringValue("text")
        with self.assertRaises(TypeError):
            StringValue(b"", ["not", "a", "dict"])
        with self.assertRaises(AuthorizationError):
            StringValue(b"").permissions  # noqa: B018


class FileValueTest(unittest.TestCase):
    def setUp(self):
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        self.path = os.path.join(directory.name, "data")
        with open(self.path, "wb") as stream:
            stream.write(b"0123456789")

    def test_attributes(self):
        value = FileValue(self.path)
        self.assertEqual(value.size, 10)
        self.assertIsNone(value.created)
        self.assertEqual(value.modified, os.stat(self.path).st_mtime)
        self.assertEqual(value.metadata, {})
        self.assertEqual(FileValue(pathlib.Path(self.path), {"a": 1}).metadata, {"a": 1})

    def test_missing_file(self):
        with self.assertRaises(FileNotFoundError):
            FileValue(self.path + ".missing")

    def test_data_and_ranges_independent(self):
        value = FileValue(self.path)
        with value.range(2, 5) as part:
            self.assertEqual(part.read(), b"234")
        with value.range(7) as part:
            self.assertEqual(part.read(), b"789")
        self.assertEqual(value.range(5, 100).read(), b"56789")
        self.assertEqual(value.range(6, 2).read(), b"")
        with value as data:
            self.assertEqual(data.read(), b"0123456789")
        self.assertTrue(data.closed)


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    body = b"0123456789"
    honour_ranges = True

    def do_GET(self):
        header = self.headers.get("Range")
        if header and self.honour_ranges:
            first, _, last = header.split("=", 1)[1].partition("-")
            first = int(first or 0)
            last = int(last) if last else len(self.body) - 1
            part = self.body[first : last + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {first}-{last}/{len(self.body)}")
        else:
            part = self.body
            self.send_response(200)
        self.send_header("Content-Length", str(len(part)))
        self.send_header("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")
        self.end_headers()
        self.wfile.write(part)

    def log_message(self, *args):
        pass


class URLValueTest(unittest.TestCase):
    def start_server(self, honour_ranges):
        handler = type("Handler", (_RangeHandler,), {"honour_ranges": honour_ranges})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()

        def stop():
            server.shutdown()
            server.server_close()
            thread.join(10)

        self.addCleanup(stop)
        return f"http://127.0.0.1:{server.server_address[1]}/data"

    def test_file_url(self):
        with tempfile.TemporaryDirectory() as directory:
            path = pathlib.Path(directory, "data")
            path.write_bytes(b"0123456789")
            value = URLValue(path.as_uri(), {"a": 1})
            self.assertEqual(value.size, 10)
            self.assertIsNotNone(value.modified)
            self.assertIsNone(value.created)
            with value as data:
                self.assertEqual(data.read(), b"0123456789")
            with value.range(2, 5) as part:
                self.assertEqual(part.read(), b"234")
            self.assertEqual(value.range(8).read(), b"89")
            self.assertEqual(value.metadata, {"a": 1})

    def test_http_206_ranges_are_end_exclusive(self):
        url = self.start_server(honour_ranges=True)
        value = URLValue(url, timeout=10)
        self.assertEqual(value.size, 10)
        self.assertEqual(value.modified, 1445412480.0)
        with value.range(2, 5) as part:
            self.assertEqual(part.read(), b"234")
        with value.range(3) as part:
            self.assertEqual(part.read(), b"3456789")
        self.assertEqual(value.range(4, 4).read(), b"")
        value.data.close()

    def test_http_without_range_support(self):
        url = self.start_server(honour_ranges=False)
        value = URLValue(url, timeout=10)
        with value.range(2, 5) as part:
            self.assertEqual(part.read(), b"234")
        with value.data as data:
            self.assertEqual(data.read(), b"0123456789")

    def test_unreachable_server_fails_fast(self):
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        value = URLValue(f"http://127.0.0.1:{port}/x", timeout=2)
        with self.assertRaises(OSError):
            value.data  # noqa: B018

    def test_bad_url_type(self):
        with self.assertRaises(TypeError):
            URLValue(b"file:///x")


if __name__ == "__main__":
    unittest.main()
