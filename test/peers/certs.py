#!/usr/bin/python3
"""Throwaway certificates for voxrelay's TLS tests, made with the openssl CLI.

make_certs(dirpath, key_type) writes into dirpath:
  ca.pem / ca.key                 a test CA (EC P-256 or RSA 2048)
  server.pem / server.key         a server certificate signed by that CA for the
                                  names given (SAN DNS:localhost, IP:127.0.0.1,
                                  IP:::1 by default)
  wrong.pem / wrong.key           signed by the same CA, SAN DNS:wrong.example only
  untrusted-ca.pem                another CA, nobody trusts it
  untrusted.pem / untrusted.key   a server certificate for the right names signed
                                  by that other CA
and returns a dict of the paths.  Keys are generated in parallel so the whole
set takes a fraction of a second.

CLI: certs.py DIR [--rsa] [--name NAME ...] prints the dict as JSON."""

import argparse
import json
import os
import random
import ssl
import subprocess

DEFAULT_NAMES = ("DNS:localhost", "IP:127.0.0.1", "IP:::1")
OPENSSL = "openssl"
TIMEOUT = 20

_CONF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[srv_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = %s
"""


def _keygen_args(key_type, out):
    if key_type == "ec":
        return [OPENSSL, "genpkey", "-algorithm", "EC",
                "-pkeyopt", "ec_paramgen_curve:P-256", "-out", out]
    if key_type == "rsa":
        return [OPENSSL, "genpkey", "-algorithm", "RSA",
                "-pkeyopt", "rsa_keygen_bits:2048", "-out", out]
    raise ValueError("key_type must be 'ec' or 'rsa', not %r" % (key_type,))


def _run(args):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=TIMEOUT)
    if p.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(args[:3]),
                                              p.stderr.decode(errors="replace")))


def _san(names):
    out = []
    for n in names:
        if n.startswith(("DNS:", "IP:")):
            out.append(n)
        elif n.replace(".", "").isdigit() or ":" in n:
            out.append("IP:" + n)
        else:
            out.append("DNS:" + n)
    return ", ".join(out)


def _write_conf(dirpath, tag, names):
    path = os.path.join(dirpath, "openssl-%s.cnf" % tag)
    with open(path, "w") as f:
        f.write(_CONF % _san(names))
    return path


def _self_signed(dirpath, key, out, cn, conf):
    _run([OPENSSL, "req", "-x509", "-new", "-key", key, "-sha256", "-days", "3650",
          "-subj", "/CN=" + cn, "-config", conf, "-extensions", "ca_ext",
          "-set_serial", str(random.getrandbits(63) | 1), "-out", out])


def _leaf(dirpath, key, out, cn, ca, ca_key, conf):
    csr = out + ".csr"
    _run([OPENSSL, "req", "-new", "-key", key, "-subj", "/CN=" + cn,
          "-config", conf, "-out", csr])
    _run([OPENSSL, "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
          "-sha256", "-days", "825", "-set_serial", str(random.getrandbits(63) | 1),
          "-extfile", conf, "-extensions", "srv_ext", "-out", out])
    os.unlink(csr)


def make_certs(dirpath, key_type="ec", names=DEFAULT_NAMES):
    """Writes the CA and server certificates into dirpath; returns their paths:
    ca, ca_key, cert, key, wrong_cert, wrong_key, untrusted_ca, untrusted_cert,
    untrusted_key."""
    os.makedirs(dirpath, exist_ok=True)
    p = {
        "ca": os.path.join(dirpath, "ca.pem"),
        "ca_key": os.path.join(dirpath, "ca.key"),
        "cert": os.path.join(dirpath, "server.pem"),
        "key": os.path.join(dirpath, "server.key"),
        "wrong_cert": os.path.join(dirpath, "wrong.pem"),
        "wrong_key": os.path.join(dirpath, "wrong.key"),
        "untrusted_ca": os.path.join(dirpath, "untrusted-ca.pem"),
        "untrusted_ca_key": os.path.join(dirpath, "untrusted-ca.key"),
        "untrusted_cert": os.path.join(dirpath, "untrusted.pem"),
        "untrusted_key": os.path.join(dirpath, "untrusted.key"),
    }
    keys = ("ca_key", "key", "wrong_key", "untrusted_ca_key", "untrusted_key")
    procs = [subprocess.Popen(_keygen_args(key_type, p[k]), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for k in keys]
    errors = []
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        if proc.returncode != 0:
            errors.append(err.decode(errors="replace"))
    if errors:
        raise RuntimeError("openssl genpkey failed: " + errors[0])
    good = _write_conf(dirpath, "good", names)
    wrong = _write_conf(dirpath, "wrong", ["DNS:wrong.example"])
    _self_signed(dirpath, p["ca_key"], p["ca"], "voxrelay test CA", good)
    _self_signed(dirpath, p["untrusted_ca_key"], p["untrusted_ca"],
                 "voxrelay untrusted CA", good)
    _leaf(dirpath, p["key"], p["cert"], "localhost", p["ca"], p["ca_key"], good)
    _leaf(dirpath, p["wrong_key"], p["wrong_cert"], "wrong.example", p["ca"],
          p["ca_key"], wrong)
    _leaf(dirpath, p["untrusted_key"], p["untrusted_cert"], "localhost",
          p["untrusted_ca"], p["untrusted_ca_key"], good)
    for c in (good, wrong):
        os.unlink(c)
    return p


def ssl_context(cert, key):
    """A server-side TLS context presenting cert/key."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def client_context(ca):
    """A client-side TLS context that trusts only the given CA and checks names."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--rsa", action="store_true", help="RSA 2048 instead of EC P-256")
    ap.add_argument("--name", action="append",
                    help="a SAN entry (DNS:x, IP:x, or a bare name); repeatable")
    args = ap.parse_args()
    paths = make_certs(args.dir, "rsa" if args.rsa else "ec",
                       args.name or DEFAULT_NAMES)
    print(json.dumps(paths, indent=1))


if __name__ == "__main__":
    main()
