"""End-to-end tests of the HTTP server's defences (issue 16) and its
buffered access log (issue 22), over loopback against the real binary:
per-address connection limits that keep the server reachable for others,
the header timeout for slow clients, unframeable bodies answered at once,
and every access line written out by shutdown."""
import json
import signal
import socket
import time
import unittest

from harness import Server, raw_connect, read_http_response


def connect_from(addr, port, timeout=5):
    """A TCP connection to the server from a chosen loopback source address."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((addr, 0))
    s.connect(("127.0.0.1", port))
    return s


def closed_by_peer(sock, within):
    """True when the server closes the socket within `within` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:
        return True


def liveness_from(addr, port):
    s = connect_from(addr, port)
    try:
        s.sendall(b"GET /liveness HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = read_http_response(s, timeout=5)
        return status, body
    finally:
        s.close()


class Framing(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def unframeable(self, te):
        s = raw_connect(self.srv.port)
        try:
            t0 = time.monotonic()
            s.sendall(("POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Transfer-Encoding: %s\r\n\r\n" % te).encode())
            status, hdrs, body = read_http_response(s, timeout=10)
            took = time.monotonic() - t0
        finally:
            s.close()
        self.assertEqual(status, 400, body)
        self.assertEqual(hdrs.get("content-type"), "application/problem+json")
        self.assertEqual(json.loads(body)["status"], 400)
        self.assertLess(took, 5.0, "answered only after a timeout")
        self.assertEqual(hdrs.get("connection", "").lower(), "close")

    def test_gzip_chunked_answered_at_once(self):
        self.unframeable("gzip, chunked")

    def test_identity_answered_at_once(self):
        self.unframeable("identity")

    def test_chunked_still_accepted(self):
        s = raw_connect(self.srv.port)
        try:
            s.sendall(b"POST /liveness HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"2\r\n{}\r\n0\r\n\r\n")
            status, _, _ = read_http_response(s)
        finally:
            s.close()
        self.assertEqual(status, 405)  # framed and routed: /liveness is GET only


class ConnectionLimits(unittest.TestCase):
    def test_one_address_cannot_shut_out_others(self):
        srv = Server(env={"HTTP_MAX_CONNECTIONS": "64", "HTTP_MAX_CONNECTIONS_PER_IP": "16",
                          "HTTP_HEADER_TIMEOUT_SECONDS": "30"})
        held = []
        try:
            # Mallory holds every slot she can get from one address, and more.
            for _ in range(100):
                try:
                    held.append(connect_from("127.0.0.1", srv.port))
                except OSError:
                    break
            time.sleep(0.5)
            alive = [s for s in held if not closed_by_peer(s, 0.05)]
            self.assertLessEqual(len(alive), 16, "more connections than the per-address limit")
            # Everybody else is still served.
            for addr in ("127.0.0.2", "127.0.0.3"):
                status, body = liveness_from(addr, srv.port)
                self.assertEqual(status, 200, body)
        finally:
            for s in held:
                s.close()
            srv.stop()

    def test_slow_header_client_is_closed(self):
        srv = Server(env={"HTTP_HEADER_TIMEOUT_SECONDS": "1"})
        try:
            s = raw_connect(srv.port)
            s.sendall(b"GET /liveness HTTP/1.1\r\n")  # and never the rest
            self.assertTrue(closed_by_peer(s, 6.0), "a slow-header connection stayed open")
            s.close()
            # A prompt client on a keep-alive connection keeps the idle
            # timeout (30 s), not the header timeout, between requests.
            c = srv.conn()
            srv.request("GET", "/liveness", conn=c)
            time.sleep(2.5)
            status, _, _ = srv.request("GET", "/liveness", conn=c)
            self.assertEqual(status, 200)
            c.close()
        finally:
            srv.stop()


class AccessLog(unittest.TestCase):
    def count_lines(self, env):
        srv = Server(env=env)
        try:
            c = srv.conn()
            for i in range(300):
                srv.request("GET", "/liveness", conn=c, headers={"X-Request-ID": "burst-%d" % i})
            c.close()
            srv.proc.send_signal(signal.SIGTERM)
            srv.proc.wait(timeout=20)
            time.sleep(0.2)  # the reader thread drains the pipe
            ids = {r.get("request_id") for r in srv.logs() if r.get("message") == "request"}
            return len([i for i in ids if i and i.startswith("burst-")])
        finally:
            srv.stop()

    def test_buffered_lines_all_written_by_shutdown(self):
        self.assertEqual(self.count_lines({}), 300)

    def test_unbuffered_mode(self):
        srv = Server(env={"ACCESS_LOG_BUFFERED": "false"})
        try:
            srv.request("GET", "/liveness", headers={"X-Request-ID": "unbuffered-1"})
            t0 = time.monotonic()
            while time.monotonic() - t0 < 3:
                if [r for r in srv.logs() if r.get("request_id") == "unbuffered-1"]:
                    break
                time.sleep(0.01)
            self.assertTrue([r for r in srv.logs() if r.get("request_id") == "unbuffered-1"])
        finally:
            srv.stop()
        self.assertEqual(self.count_lines({"ACCESS_LOG_BUFFERED": "false"}), 300)


if __name__ == "__main__":
    unittest.main()
