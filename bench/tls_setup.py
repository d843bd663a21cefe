"""TLS pieces of the comparison (bench/compare.py): one certificate for every contestant, the
nginx and redis-server TLS configurations, and the checks that say what each contestant
negotiated, whether it resumes sessions and whether a client really made a new connection per
request. Python 3.11 standard library and the `openssl` command line; loopback only.
"""
import os
import re
import socket
import ssl
import subprocess

# Each step of certificate making, and each probe, is bounded.
OPENSSL_TIMEOUT = 20


def _openssl(*args, cwd):
    out = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True,
                         timeout=OPENSSL_TIMEOUT)
    if out.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {out.stderr.strip()[-400:]}")
    return out.stdout


def make_certificates(folder):
    """A P-256 (ECDSA) CA and a server certificate it signs, for `localhost` and 127.0.0.1, valid
    for two days; written into `folder`. Every contestant presents this same certificate and key,
    so each pays for the same signature in its handshakes. Returns the paths and a description."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=socketserver bench CA", cwd=folder)
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
             cwd=folder)
    with open(os.path.join(folder, "server.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-out", "server.pem", "-extfile", "server.ext",
             cwd=folder)
    paths = {k: os.path.join(folder, f) for k, f in
             (("cert", "server.pem"), ("key", "server.key"), ("ca", "ca.pem"))}
    paths["description"] = ("ECDSA P-256 server certificate (SHA-256 signature) for localhost and "
                            "127.0.0.1, signed by a P-256 CA the clients trust; made with the "
                            "openssl CLI at the start of the run, the same files for every "
                            "contestant")
    return paths


def nginx_conf(prefix, port, certs, tls, workers=1):
    """nginx's configuration: `workers` workers (a master process only when there are several),
    no access log, the hello response;
    with `tls`, `listen ... ssl` with TLS 1.3 only and the shared certificate (nginx's other
    TLS defaults: session tickets on, no shared session cache)."""
    listen = f"listen 127.0.0.1:{port}" + (" ssl" if tls else "") + ";"
    ssl_lines = ""
    if tls:
        ssl_lines = (f"ssl_certificate {certs['cert']};\n        ssl_certificate_key {certs['key']};\n"
                     "        ssl_protocols TLSv1.3;\n")
    return f"""daemon off;
master_process {"on" if workers > 1 else "off"};
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix};
    proxy_temp_path {prefix};
    fastcgi_temp_path {prefix};
    uwsgi_temp_path {prefix};
    scgi_temp_path {prefix};
    keepalive_requests 1000000;
    server {{
        {listen}
        {ssl_lines}
        location / {{ default_type text/plain; return 200 "hello\\n"; }}
    }}
}}
"""


def redis_tls_args(port, certs):
    """redis-server on `port` for TLS only (`--port 0`), with the shared certificate, clients not
    asked for theirs."""
    return ["--port", "0", "--tls-port", str(port), "--tls-cert-file", certs["cert"],
            "--tls-key-file", certs["key"], "--tls-ca-cert-file", certs["ca"],
            "--tls-auth-clients", "no"]


def client_context(certs):
    ctx = ssl.create_default_context(cafile=certs["ca"])
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def negotiated(port, certs):
    """What `openssl s_client` (OpenSSL's defaults, as redis-benchmark and wrk use) negotiates
    with the server: protocol, cipher suite, key exchange group, signature."""
    try:
        out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-brief",
                              "-servername", "localhost", "-CAfile", certs["ca"]],
                             input="", capture_output=True, text=True, timeout=OPENSSL_TIMEOUT)
    except subprocess.TimeoutExpired:
        return "s_client timed out"
    text = out.stderr + out.stdout
    found = {}
    for key, label in (("Protocol version", "protocol"), ("Ciphersuite", "cipher"),
                       ("Server Temp Key", "group"), ("Signature type", "signature"),
                       ("Verification", "verification")):
        m = re.search(rf"^{key}: (.+)$", text, re.M)
        if m:
            found[label] = m.group(1).split(",")[0].strip()  # "X25519, 253 bits": the name
    return ", ".join(found.get(k, "?") for k in ("protocol", "cipher", "group", "signature")) + (
        "" if found.get("verification") == "OK" else f" (verification: {found.get('verification', '?')})")


def resumes(port, certs, request, timeout=5):
    """Whether a second connection resumes the first one's TLS 1.3 session (a ticket): the first
    sends `request` and reads the answer (tickets come after the handshake), the second offers
    that session. (True/False, note)."""
    ctx = client_context(certs)

    def one(session):
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
                s.sendall(request)
                s.recv(4096)
                return s.session, s.session_reused

    try:
        first, _ = one(None)
        if first is None or not first.has_ticket:
            return False, "no session ticket"
        _, reused = one(first)
        return reused, "resumed" if reused else "ticket not accepted"
    except (OSError, ssl.SSLError) as e:
        return False, f"probe failed: {e}"


def closed_connections(port):
    """Connections to or from `port` in TIME_WAIT now (`ss`): each closed connection leaves one,
    on the side that closed first, for 60 s."""
    out = subprocess.run(["ss", "-Htan", "state", "time-wait",
                          f"( sport = :{port} or dport = :{port} )"],
                         capture_output=True, text=True, timeout=OPENSSL_TIMEOUT)
    return len([line for line in out.stdout.splitlines() if line.strip()])
