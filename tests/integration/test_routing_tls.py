"""TLS and mutual TLS on routing's gRPC port, as intake's client, the container health probe
and an outsider meet it; a client certificate as a service account's identity; and the
ROUTING_TLS_* settings that stop the process when wrong.

Certificates are made here with `cryptography`: a CA, a server certificate for 127.0.0.1 and
localhost, client certificates ("client", which an account names, and "stranger", which
none does), and a second CA that nobody trusts."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from google.protobuf import empty_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lapor.v1 import routing_pb2
from services.infra import healthcheck
from services.infra.config import ConfigError, Env
from services.intake.routing_client import ClientTLS, RoutingClient
from services.routing import auth, storage
from services.routing.app import RoutingService, ServerTLS, Settings
from tests.conftest import free_port
from tests.integration.helpers import account_token, bearer, temporary_vhost

pytestmark = pytest.mark.integration
TLS_VARS = ("ROUTING_TLS_CA", "ROUTING_TLS_CLIENT_CERT", "ROUTING_TLS_CLIENT_KEY",
            "ROUTING_TLS_SERVER_NAME")
SUGGESTION = routing_pb2.SuggestRouteRequest(
    title="Jalan rusak berlubang", body="Jalan kabupaten di depan pasar berlubang besar.",
    region_code="13.03")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, key, issuer: x509.Certificate | None, issuer_key, *,
                 ca: bool = False, server: bool = False) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(_name(subject))
               .issuer_name(issuer.subject if issuer else _name(subject))
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(minutes=5))
               .not_valid_after(now + timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True,
            content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
    elif server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(directory: Path, name: str, cert: x509.Certificate, key) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    """Paths: ca, server.crt/key, client.crt/key, stranger.crt/key, other-ca and a client
    it signed."""
    directory = tmp_path_factory.mktemp("pki")
    paths = {}
    for ca_name, prefix in (("ca", ""), ("other-ca", "other-")):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _certificate(f"LAPOR test {ca_name}", ca_key, None, ca_key, ca=True)
        paths[ca_name], _ = _write(directory, ca_name, ca_cert, ca_key)
        for role in ("server", "client", "stranger"):
            key = ec.generate_private_key(ec.SECP256R1())
            cert = _certificate(f"{prefix}{role}", key, ca_cert, ca_key,
                                server=role == "server")
            paths[f"{prefix}{role}.crt"], paths[f"{prefix}{role}.key"] = _write(
                directory, f"{prefix}{role}", cert, key)
    return paths


def start_routing(tmp_path: Path, amqp_url: str, tls: ServerTLS) -> RoutingService:
    return RoutingService(Settings(
        database_url=f"sqlite:///{tmp_path / 'routing.db'}", amqp_url=amqp_url,
        listen=f"127.0.0.1:{free_port()}", metrics_port=free_port(), shutdown_seconds=4,
        tls=tls)).start()


def server_tls(pki, *, mutual: bool) -> ServerTLS:
    env = {"ROUTING_TLS_CERT": str(pki["server.crt"]),
           "ROUTING_TLS_KEY": str(pki["server.key"])}
    if mutual:
        env["ROUTING_TLS_CLIENT_CA"] = str(pki["ca"])
    return Settings.from_env(Env(env)).tls


def client(address: str, **env: Path | str) -> RoutingClient:
    return RoutingClient(address, 5, tls=ClientTLS.from_env(Env(
        {k: str(v) for k, v in env.items()})))


def refused(routing_client: RoutingClient) -> bool:
    """Whether the connection itself fails (TLS); an answer, even UNAUTHENTICATED, is not."""
    try:
        routing_client.suggest(SUGGESTION)
    except grpc.RpcError as exc:
        return exc.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        routing_client.close()
    return False


def who(routing_client: RoutingClient, token: str | None = None) -> str | grpc.StatusCode:
    """The username routing takes the caller to be, or the status code it answered."""
    try:
        return routing_client.stub.WhoAmI(empty_pb2.Empty(), timeout=5,
                                          metadata=bearer(token) if token else None).username
    except grpc.RpcError as exc:
        return exc.code()


@pytest.fixture
def clean_env(monkeypatch):
    for name in TLS_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_tls_serves_clients_that_trust_its_ca_and_refuses_the_rest(pki, tmp_path, clean_env):
    with temporary_vhost() as amqp_url:
        service = start_routing(tmp_path, amqp_url, server_tls(pki, mutual=False))
        address = f"127.0.0.1:{service.port}"
        try:
            token = account_token(service.engine, "intake", "service")
            trusted = client(address, ROUTING_TLS_CA=pki["ca"])
            try:
                assert trusted.stub.SuggestRoute(SUGGESTION, metadata=bearer(token),
                                                 timeout=5).category_code == "PUPR"
                assert trusted.healthy()
                # TLS proves who routing is, not who the caller is.
                assert who(trusted) == grpc.StatusCode.UNAUTHENTICATED
                assert who(trusted, token) == "intake"
            finally:
                trusted.close()
            # The certificate names localhost too; an override names what to expect.
            renamed = client(address, ROUTING_TLS_CA=pki["ca"], ROUTING_TLS_SERVER_NAME="localhost")
            assert not refused(renamed)
            assert refused(client(address, ROUTING_TLS_CA=pki["ca"],
                                  ROUTING_TLS_SERVER_NAME="routing.example.go.id"))
            assert refused(client(address, ROUTING_TLS_CA=pki["other-ca"]))
            with grpc.insecure_channel(address) as plaintext:
                with pytest.raises(grpc.RpcError) as raised:
                    health_pb2_grpc.HealthStub(plaintext).Check(health_pb2.HealthCheckRequest(),
                                                                timeout=5)
                assert raised.value.code() == grpc.StatusCode.UNAVAILABLE

            # The container probe: grpcs:// with the CA from ROUTING_TLS_CA.
            assert not healthcheck.check(f"grpc://{address}")
            assert not healthcheck.check(f"grpcs://{address}"), "the system CAs do not trust it"
            clean_env.setenv("ROUTING_TLS_CA", str(pki["ca"]))
            assert healthcheck.check(f"grpcs://{address}")
            assert healthcheck.main([f"grpcs://localhost:{service.port}"]) == 0
            # The readiness question: the API's own service name.
            assert healthcheck.check(f"grpcs://{address}/lapor.v1.RoutingService")
            assert not healthcheck.check(f"grpcs://{address}/lapor.v1.NoSuchService")
        finally:
            service.stop()


def test_mutual_tls_requires_a_client_certificate_from_its_ca(pki, tmp_path, clean_env):
    with temporary_vhost() as amqp_url:
        service = start_routing(tmp_path, amqp_url, server_tls(pki, mutual=True))
        address = f"127.0.0.1:{service.port}"
        try:
            with_certificate = client(address, ROUTING_TLS_CA=pki["ca"],
                                      ROUTING_TLS_CLIENT_CERT=pki["client.crt"],
                                      ROUTING_TLS_CLIENT_KEY=pki["client.key"])
            assert not refused(with_certificate)
            assert refused(client(address, ROUTING_TLS_CA=pki["ca"]))
            assert refused(client(address, ROUTING_TLS_CA=pki["ca"],
                                  ROUTING_TLS_CLIENT_CERT=pki["other-client.crt"],
                                  ROUTING_TLS_CLIENT_KEY=pki["other-client.key"]))

            clean_env.setenv("ROUTING_TLS_CA", str(pki["ca"]))
            assert not healthcheck.check(f"grpcs://{address}")
            clean_env.setenv("ROUTING_TLS_CLIENT_CERT", str(pki["client.crt"]))
            clean_env.setenv("ROUTING_TLS_CLIENT_KEY", str(pki["client.key"]))
            assert healthcheck.check(f"grpcs://{address}")
        finally:
            service.stop()


def test_a_client_certificate_is_the_identity_of_the_service_account_that_names_it(
        pki, tmp_path, clean_env):
    with temporary_vhost() as amqp_url:
        service = start_routing(tmp_path, amqp_url, server_tls(pki, mutual=True))
        address = f"127.0.0.1:{service.port}"
        with service.engine.begin() as conn:
            storage.seed_demo(conn)
            auth.create_account(conn, "intake", "service", tls_subject="client")
        officer = account_token(service.engine, "siti.pupr", "agency_officer", "PUPR-13.03")
        certified = client(address, ROUTING_TLS_CA=pki["ca"],
                           ROUTING_TLS_CLIENT_CERT=pki["client.crt"],
                           ROUTING_TLS_CLIENT_KEY=pki["client.key"])
        stranger = client(address, ROUTING_TLS_CA=pki["ca"],
                          ROUTING_TLS_CLIENT_CERT=pki["stranger.crt"],
                          ROUTING_TLS_CLIENT_KEY=pki["stranger.key"])
        try:
            assert who(certified) == "intake"
            assert certified.suggest(SUGGESTION).agency.code == "PUPR-13.03"
            # A staff member's token passed through by intake: the token decides, and a bad
            # one is refused rather than falling back to the certificate.
            assert who(certified, officer) == "siti.pupr"
            assert who(certified, auth.new_token()) == grpc.StatusCode.UNAUTHENTICATED
            # Signed by the right CA, but no account names it.
            assert who(stranger) == grpc.StatusCode.UNAUTHENTICATED
            with service.engine.begin() as conn:
                auth.set_active(conn, "intake", False)
            assert who(certified) == grpc.StatusCode.UNAUTHENTICATED
        finally:
            certified.close()
            stranger.close()
            service.stop()


# -- settings --------------------------------------------------------------------------------
def test_plaintext_and_no_reflection_are_the_defaults():
    settings = Settings.from_env(Env({}))
    assert settings.tls is None and settings.reflection is False
    assert settings.db_pool_timeout == 2.0
    assert ClientTLS.from_env(Env({})) is None
    enabled = Settings.from_env(Env({"ROUTING_REFLECTION": "true",
                                     "ROUTING_DB_POOL_TIMEOUT": "0.5"}))
    assert enabled.reflection is True and enabled.db_pool_timeout == 0.5
    with pytest.raises(ConfigError, match="ROUTING_DB_POOL_TIMEOUT must be .* above 0"):
        Settings.from_env(Env({"ROUTING_DB_POOL_TIMEOUT": "0"}))


def test_server_tls_settings_that_cannot_work_stop_the_process_naming_the_variable(pki,
                                                                                   tmp_path):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    cert, key = str(pki["server.crt"]), str(pki["server.key"])
    cases = [
        ({"ROUTING_TLS_CERT": str(tmp_path / "missing.crt"), "ROUTING_TLS_KEY": key},
         r"ROUTING_TLS_CERT: cannot read .*missing\.crt"),
        ({"ROUTING_TLS_CERT": cert, "ROUTING_TLS_KEY": str(tmp_path)},
         "ROUTING_TLS_KEY: cannot read"),
        ({"ROUTING_TLS_CERT": cert}, "ROUTING_TLS_CERT and ROUTING_TLS_KEY go together"),
        ({"ROUTING_TLS_KEY": key}, "ROUTING_TLS_CERT and ROUTING_TLS_KEY go together"),
        ({"ROUTING_TLS_CLIENT_CA": str(pki["ca"])}, "ROUTING_TLS_CLIENT_CA needs"),
        ({"ROUTING_TLS_CERT": str(garbage), "ROUTING_TLS_KEY": key},
         "ROUTING_TLS_CERT is not a PEM certificate"),
        ({"ROUTING_TLS_CERT": cert, "ROUTING_TLS_KEY": str(garbage)},
         "ROUTING_TLS_KEY is not an unencrypted PEM private key"),
        ({"ROUTING_TLS_CERT": cert, "ROUTING_TLS_KEY": str(pki["client.key"])},
         "ROUTING_TLS_KEY is not the key of ROUTING_TLS_CERT"),
        ({"ROUTING_TLS_CERT": cert, "ROUTING_TLS_KEY": key,
          "ROUTING_TLS_CLIENT_CA": str(garbage)}, "ROUTING_TLS_CLIENT_CA is not a PEM"),
    ]
    for env, message in cases:
        with pytest.raises(ConfigError, match=message):
            Settings.from_env(Env(env))


def test_client_tls_settings_that_cannot_work_stop_the_process_naming_the_variable(pki,
                                                                                   tmp_path):
    ca = str(pki["ca"])
    cases = [
        ({"ROUTING_TLS_CA": str(tmp_path / "missing.crt")}, "ROUTING_TLS_CA: cannot read"),
        ({"ROUTING_TLS_CA": ca, "ROUTING_TLS_CLIENT_CERT": str(pki["client.crt"])},
         "ROUTING_TLS_CLIENT_CERT and ROUTING_TLS_CLIENT_KEY go together"),
        ({"ROUTING_TLS_CLIENT_CERT": str(pki["client.crt"]),
          "ROUTING_TLS_CLIENT_KEY": str(pki["client.key"])}, "ROUTING_TLS_CA is required"),
        ({"ROUTING_TLS_CA": str(tmp_path)}, "ROUTING_TLS_CA: cannot read"),
    ]
    for env, message in cases:
        with pytest.raises(ConfigError, match=message):
            ClientTLS.from_env(Env(env))
