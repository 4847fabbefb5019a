"""pki - certificates for the security tests, made with python3-cryptography
(Debian): a CA, server and client certificates signed by it, a second CA
whose clients must be refused, and expired certificates."""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn, org="hl7q tests"):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path, data, mode=0o600):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


class CA:
    """A certificate authority in directory d, named name."""

    def __init__(self, d, name):
        self.d, self.name = d, name
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.utcnow()
        self.subject = _name(name + " CA")
        self.cert = (x509.CertificateBuilder().subject_name(self.subject).issuer_name(self.subject)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=30))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.pem = os.path.join(d, name + "-ca.pem")
        _write(self.pem, self.cert.public_bytes(serialization.Encoding.PEM), 0o644)

    def issue(self, cn, server=False, expired=False, ip="127.0.0.1", dns=None):
        """(cert path, key path) of a certificate for cn signed by this CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.utcnow()
        before, after = ((now - datetime.timedelta(days=10), now - datetime.timedelta(days=1)) if expired
                         else (now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)))
        b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(self.subject)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(before).not_valid_after(after))
        if server:
            alt = [x509.IPAddress(ipaddress.ip_address(ip))] + ([x509.DNSName(dns)] if dns else [])
            b = b.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        cert = b.sign(self.key, hashes.SHA256())
        base = os.path.join(self.d, "%s-%s%s" % (self.name, cn.replace(" ", "_"), "-expired" if expired else ""))
        _write(base + ".pem", cert.public_bytes(serialization.Encoding.PEM), 0o644)
        _write(base + ".key", key.private_bytes(serialization.Encoding.PEM,
                                                serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
        return base + ".pem", base + ".key"
