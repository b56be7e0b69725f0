"""End-to-end e-mail verification (issue #17): a real message over SMTP from the
real binary (libcurl) to a small SMTP server on loopback that this test runs,
the code read from that message, expiry, attempt limits and the iOS app's reply
shapes (clients/ios-app.md)."""
import json
import re
import socket
import threading
import time
import unittest
import uuid

from harness import Server

PASSWORD = "Correct-Horse-9"


class SmtpSink:
    """A minimal SMTP server (RFC 5321 commands a client needs) that keeps
    every message it receives: (mail_from, [rcpt], data)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.messages = []
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(c,), daemon=True).start()

    def _session(self, c):
        f = c.makefile("rb")

        def say(line):
            c.sendall(line.encode() + b"\r\n")
        say("220 sink.test ESMTP")
        mail_from, rcpt = None, []
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                cmd = line.decode("utf-8", "replace").strip()
                verb = cmd[:4].upper()
                if verb == "EHLO":
                    say("250-sink.test")
                    say("250 8BITMIME")
                elif verb == "HELO":
                    say("250 sink.test")
                elif verb == "MAIL":
                    mail_from = cmd[10:]
                    say("250 OK")
                elif verb == "RCPT":
                    rcpt.append(cmd[8:])
                    say("250 OK")
                elif verb == "DATA":
                    say("354 End data with <CR><LF>.<CR><LF>")
                    data = b""
                    while True:
                        l2 = f.readline()
                        if l2 in (b".\r\n", b".\n", b""):
                            break
                        data += l2[1:] if l2.startswith(b"..") else l2
                    with self.lock:
                        self.messages.append((mail_from, list(rcpt), data.decode("utf-8", "replace")))
                    rcpt = []
                    say("250 OK queued")
                elif verb == "QUIT":
                    say("221 Bye")
                    return
                else:
                    say("250 OK")
        finally:
            c.close()

    def wait_for(self, to, count=1, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                got = [m for m in self.messages if any(to in r for r in m[1])]
            if len(got) >= count:
                return got[count - 1]
            time.sleep(0.05)
        raise AssertionError("no message for %s" % to)

    def close(self):
        self.sock.close()


def post(srv, path, obj, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    return srv.json("POST", path, body=json.dumps(obj), headers=headers)


def code_of(msg):
    m = re.search(r"verification code is (\d{6})", msg[2])
    assert m, msg
    return m.group(1)


class EmailVerification(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.smtp = SmtpSink()
        cls.srv = Server(env={"SMTP_URL": "smtp://127.0.0.1:%d" % cls.smtp.port, "SMTP_FROM": "noreply@clarity.test",
                              "RATE_LIMITS": "auth=1000/60"})

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.smtp.close()

    def register(self):
        email = "v-%s@example.com" % uuid.uuid4().hex[:8]
        status, _, doc = post(self.srv, "/api/v1/auth/register",
                              {"email": email, "password": PASSWORD, "display_name": "Ada L.",
                               "terms_accepted": True, "privacy_policy_accepted": True})
        self.assertEqual(status, 201, doc)
        for k, t in (("access_token", str), ("refresh_token", str), ("token_type", str), ("expires_in", int),
                     ("scope", str)):
            self.assertIsInstance(doc[k], t, k)
        return email, doc

    def test_code_by_email_verifies(self):
        email, reg = self.register()
        msg = self.smtp.wait_for(email)
        self.assertIn("noreply@clarity.test", msg[0])
        self.assertRegex(msg[2], r"(?m)^Subject: Your Clarity verification code\r?$")
        self.assertRegex(msg[2], r"(?m)^To: %s\r?$" % re.escape(email))
        code = code_of(msg)
        self.assertNotIn(code, self.srv.text())  # never logged
        status, _, me = self.srv.json("GET", "/api/v1/auth/me", headers={"Authorization": "Bearer " +
                                                                          reg["access_token"]})
        self.assertFalse(me["email_verified"])
        self.assertEqual(me["display_name"], "Ada L.")
        self.assertEqual(me["auth_provider"], "clarity")
        wrong = "%06d" % ((int(code) + 1) % 1000000)
        status, _, doc = post(self.srv, "/api/v1/auth/verify-email", {"verification_code": wrong, "email": email})
        self.assertEqual(status, 400, doc)
        status, _, doc = post(self.srv, "/api/v1/auth/verify-email",
                              {"verification_code": code, "email": email.upper()})
        self.assertEqual(status, 200, doc)
        u = doc["user"]
        for k, t in (("id", str), ("email", str), ("display_name", str), ("provider", str), ("role", str),
                     ("is_active", bool), ("is_email_verified", bool)):
            self.assertIsInstance(u[k], t, k)
        self.assertTrue(u["is_email_verified"])
        for k, t in (("access_token", str), ("refresh_token", str), ("token_type", str), ("expires_in", int)):
            self.assertIsInstance(doc["tokens"][k], t, k)
        status, _, me = self.srv.json("GET", "/api/v1/auth/me", headers={"Authorization": "Bearer " +
                                                                          doc["tokens"]["access_token"]})
        self.assertTrue(me["email_verified"])
        # A used code is spent.
        status, _, doc = post(self.srv, "/api/v1/auth/verify-email", {"verification_code": code, "email": email})
        self.assertEqual(status, 400, doc)

    def test_attempt_limit_and_resend(self):
        email, reg = self.register()
        code = code_of(self.smtp.wait_for(email))
        wrong = "%06d" % ((int(code) + 7) % 1000000)
        for _ in range(5):
            self.assertEqual(post(self.srv, "/api/v1/auth/verify-email",
                                  {"verification_code": wrong, "email": email})[0], 400)
        # Used up: even the right code is refused now.
        self.assertEqual(post(self.srv, "/api/v1/auth/verify-email",
                              {"verification_code": code, "email": email})[0], 400)
        # A resend within the minute sends nothing new; the reply is the same
        # as for an e-mail with no account.
        status, _, doc = post(self.srv, "/api/v1/auth/resend-verification", {"email": email})
        self.assertEqual(status, 200, doc)
        status, _, other = post(self.srv, "/api/v1/auth/resend-verification",
                                {"email": "nobody-%s@example.com" % uuid.uuid4().hex[:6]})
        self.assertEqual((status, other), (200, doc))
        time.sleep(0.5)
        with self.smtp.lock:
            self.assertEqual(len([m for m in self.smtp.messages if any(email in r for r in m[1])]), 1)
        # After the cooldown (the sent_at is moved back), a new code arrives and works with the bearer token.
        import os
        import sqlite3
        with sqlite3.connect(os.path.join(self.srv.dir, "clarity.db")) as c:
            c.execute("UPDATE email_verifications SET sent_at = sent_at - 120000")
        self.assertEqual(post(self.srv, "/api/v1/auth/resend-verification", {"email": email})[0], 200)
        code2 = code_of(self.smtp.wait_for(email, count=2))
        status, _, doc = post(self.srv, "/api/v1/auth/verify-email", {"verification_code": code2},
                              token=reg["access_token"])
        self.assertEqual(status, 200, doc)

    def test_expired_code(self):
        email, reg = self.register()
        code = code_of(self.smtp.wait_for(email))
        import os
        import sqlite3
        with sqlite3.connect(os.path.join(self.srv.dir, "clarity.db")) as c:
            c.execute("UPDATE email_verifications SET expires_at = 1")
        self.assertEqual(post(self.srv, "/api/v1/auth/verify-email",
                              {"verification_code": code, "email": email})[0], 400)

    def test_no_smtp_configured(self):
        srv = Server(env={"RATE_LIMITS": "auth=1000/60"})
        try:
            status, _, doc = post(srv, "/api/v1/auth/resend-verification", {"email": "a@example.com"})
            self.assertEqual(status, 503, doc)
        finally:
            srv.stop()


if __name__ == "__main__":
    unittest.main()
