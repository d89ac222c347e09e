"""An aiosmtpd server with TLS and authentication, storing messages in a
Maildir: smtpd_tls.py PORT starttls|implicit CERT KEY MAILDIR USER PASSWORD.
STARTTLS is required before AUTH and MAIL; AUTH is required."""
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

port, mode, cert, key, maildir, user, password = sys.argv[1:8]
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == user
        and auth_data.password.decode() == password
    )
    # handled=False: aiosmtpd answers 235 or 535 itself.
    return AuthResult(success=ok, handled=False)


kwargs = dict(authenticator=authenticator, auth_required=True)
if mode == "starttls":
    c = Controller(Mailbox(maildir), hostname="127.0.0.1", port=int(port),
                   tls_context=ctx, require_starttls=True, auth_require_tls=True, **kwargs)
else:
    c = Controller(Mailbox(maildir), hostname="127.0.0.1", port=int(port),
                   ssl_context=ctx, auth_require_tls=False, **kwargs)
c.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
