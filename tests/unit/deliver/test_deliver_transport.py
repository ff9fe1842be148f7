"""One delivery attempt against a real receiver on 127.0.0.1: classification, request shape, limits, SSRF."""

from __future__ import annotations

import email.utils
import gzip
import ipaddress
import json
import socket
import ssl
import time
from datetime import UTC, datetime, timedelta

import pytest
from requests import adapters as requests_adapters
from standardwebhooks import Webhook

from lambdas.deliver import classify, signing, transport
from lambdas.shared.models import Category, Notification
from notiflow.demo.receiver import Step, WebhookReceiver


def make_notification(url: str, **overrides) -> Notification:
    fields = {
        "notificationId": "ntf-order-1001",
        "target": {"url": url, "method": "POST", "headers": {"X-Tenant": "acme"}},
        "payload": {"type": "order.created", "orderId": "1001", "total": 42.5, "note": "café"},
        "correlationId": "corr-7f3a",
    }
    return Notification.model_validate({**fields, **overrides})


@pytest.fixture
def keys(secret):
    return signing.parse_secrets(secret)


@pytest.fixture
def connects(monkeypatch):
    """Every address a connection is opened to. Loopback ones really connect; any other address is
    refused here (ConnectionRefusedError) so no test ever sends traffic off the machine."""
    attempted = []
    real_connect = transport._connect

    def spy(address, port, *args):
        attempted.append(address)
        if not ipaddress.ip_address(address.split("%")[0]).is_loopback:
            raise ConnectionRefusedError(111, "refused by the test: not a loopback address")
        return real_connect(address, port, *args)

    monkeypatch.setattr(transport, "_connect", spy)
    return attempted


@pytest.fixture
def listener():
    """A bare listening socket on 127.0.0.1: a completed TCP handshake would be waiting in its backlog."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock


def pending_connections(sock: socket.socket) -> int:
    """How many connections the kernel completed on ``sock`` (accepted here, without waiting)."""
    count = 0
    while True:
        try:
            accepted, _ = sock.accept()
        except BlockingIOError:
            return count
        accepted.close()
        count += 1


@pytest.fixture
def rebinding_dns(monkeypatch):
    """A name whose first lookup answers a public address and every later one loopback (DNS rebinding)."""
    lookups = []
    real_getaddrinfo = socket.getaddrinfo

    def fake_getaddrinfo(host, port, *args, **kwargs):
        if host != "rebind.example":
            return real_getaddrinfo(host, port, *args, **kwargs)
        lookups.append(host)
        address = "93.184.216.34" if len(lookups) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    return lookups


@pytest.fixture
def dead_port():
    """A port nothing listens on: bound, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("status", "category", "success", "retryable"),
    [
        (200, Category.SUCCESS, True, False),
        (201, Category.SUCCESS, True, False),
        (204, Category.SUCCESS, True, False),
        (400, Category.CLIENT_ERROR, False, False),
        (404, Category.CLIENT_ERROR, False, False),
        (408, Category.CLIENT_ERROR, False, True),
        (410, Category.CLIENT_ERROR, False, False),
        (429, Category.CLIENT_ERROR, False, True),
        (500, Category.SERVER_ERROR, False, True),
        (503, Category.SERVER_ERROR, False, True),
        (599, Category.SERVER_ERROR, False, True),
    ],
)
def test_status_codes_are_classified_like_the_seed_system(receiver, keys, status, category, success, retryable):
    # Given an endpoint answering with the status
    receiver.script("/hook", Step(status, body="" if status == 204 else f"answer {status}"))

    # When one attempt is made
    outcome = transport.send(make_notification(receiver.url("/hook")), 1, keys=keys)

    # Then category and retry verdict follow the status class
    assert (outcome.category, outcome.success, outcome.retryEligible) == (category, success, retryable)
    assert outcome.statusCode == status
    assert outcome.httpResponseReceivedAt is not None
    assert outcome.correlationId == "corr-7f3a"
    if success:
        assert outcome.errorDetails is None
    else:
        assert outcome.errorDetails.startswith(f"HTTP {status}")
        assert outcome.responseBodyExcerpt == f"answer {status}"


def test_outcome_timestamps_are_utc_iso_with_milliseconds(receiver):
    before = datetime.now(UTC)
    outcome = transport.send(make_notification(receiver.url("/ok")), 1)

    started = datetime.fromisoformat(outcome.timestamp.replace("Z", "+00:00"))
    received = datetime.fromisoformat(outcome.httpResponseReceivedAt.replace("Z", "+00:00"))
    assert outcome.timestamp.endswith("Z")
    assert len(outcome.timestamp) == len("2026-01-01T00:00:00.000Z")
    assert before - timedelta(seconds=1) <= started <= received
    assert outcome.statusText == "OK"


def test_redirect_is_not_followed_and_is_a_permanent_client_error(receiver):
    # Given an endpoint that moved to another path on the same receiver
    receiver.script("/old", Step(redirect=receiver.url("/new")))

    # When delivering
    outcome = transport.send(make_notification(receiver.url("/old")), 1)

    # Then the 301 is the result and nothing was sent to the new location
    assert outcome.category is Category.CLIENT_ERROR
    assert outcome.retryEligible is False
    assert outcome.statusCode == 301
    assert f"redirect to {receiver.url('/new')} not followed" in outcome.errorDetails
    assert receiver.requests_for("/new") == []


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_in_seconds_is_reported(receiver, status):
    receiver.script("/busy", Step(status, headers={"Retry-After": "120"}))

    outcome = transport.send(make_notification(receiver.url("/busy")), 1)

    assert outcome.retryEligible is True
    assert outcome.retryAfterSeconds == 120
    assert "Retry-After 120 s" in outcome.errorDetails


def test_retry_after_as_http_date_becomes_seconds(receiver):
    # Given a Retry-After date about 90 s ahead
    when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    receiver.script("/busy", Step(429, headers={"Retry-After": when}))

    outcome = transport.send(make_notification(receiver.url("/busy")), 1)

    assert 80 <= outcome.retryAfterSeconds <= 91


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("0", 0),
        (" 45 ", 45),
        ("999999", 999_999),
        ("9" * 5000, 999_999_999),
        ("-5", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0),
    ],
)
def test_retry_after_parsing_reports_what_was_asked_and_ignores_garbage(header, expected):
    # The ceiling of an honoured wait is the workflow's (maxRetryAfterSeconds), applied by the handler
    assert classify.parse_retry_after(header) == expected


def test_retry_after_date_far_ahead_is_reported_in_full():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert classify.parse_retry_after("Fri, 02 Jan 2026 00:00:00 GMT", now) == 86_400


def test_request_carries_the_payload_and_standard_webhooks_headers(receiver, keys, secret):
    # Given a PUT target with its own headers, one of which tries to spoof the message id
    notification = make_notification(
        receiver.url("/hooks/orders"),
        target={
            "url": receiver.url("/hooks/orders"),
            "method": "PUT",
            "headers": {"Authorization": "Bearer demo", "webhook-id": "spoofed", "Content-Length": "1"},
        },
    )

    # When delivered as attempt 3
    outcome = transport.send(notification, 3, keys=keys)

    # Then the receiver got exactly the compact JSON payload, signed and identified
    (request,) = receiver.requests_for("/hooks/orders")
    assert outcome.success
    assert request.method == "PUT"
    assert request.body == json.dumps(notification.payload, separators=(",", ":")).encode()
    assert request.json() == notification.payload
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "Notiflow/0.1"
    assert request.headers["authorization"] == "Bearer demo"
    assert request.headers["webhook-id"] == "ntf-order-1001"
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    assert request.headers["x-notiflow-attempt"] == "3"
    assert request.headers["x-correlation-id"] == "corr-7f3a"
    assert request.signature_valid is True
    assert Webhook(secret).verify(request.body, request.headers) == notification.payload


def test_webhook_id_is_stable_across_attempts_and_connections_are_reused(receiver, keys):
    # Given an endpoint failing once then recovering
    receiver.script("/flaky", [Step(503), Step(200)])
    notification = make_notification(receiver.url("/flaky"))

    # When two attempts are made
    first = transport.send(notification, 1, keys=keys)
    second = transport.send(notification, 2, keys=keys)

    # Then both carry the same webhook-id, their own attempt number, over one kept-alive connection
    one, two = receiver.requests_for("/flaky")
    assert (first.statusCode, second.statusCode) == (503, 200)
    assert one.headers["webhook-id"] == two.headers["webhook-id"] == "ntf-order-1001"
    assert (one.headers["x-notiflow-attempt"], two.headers["x-notiflow-attempt"]) == ("1", "2")
    assert one.client_port == two.client_port


def test_without_keys_the_request_is_identified_but_unsigned(receiver):
    transport.send(make_notification(receiver.url("/ok")), 1, keys=[])

    (request,) = receiver.requests_for("/ok")
    assert "webhook-signature" not in request.headers
    assert request.headers["webhook-id"] == "ntf-order-1001"
    assert request.headers["webhook-timestamp"].isdigit()
    assert request.signature_valid is False


def test_rotation_sends_one_signature_per_secret(receiver, secret, rotated_secret):
    keys = signing.parse_secrets(f"{rotated_secret} {secret}")

    transport.send(make_notification(receiver.url("/ok")), 1, keys=keys)

    (request,) = receiver.requests_for("/ok")
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    Webhook(secret).verify(request.body, request.headers)
    Webhook(rotated_secret).verify(request.body, request.headers)


def test_slow_endpoint_hits_the_read_timeout(receiver, configure):
    # Given a 0.3 s read timeout and an endpoint answering after 2 s
    configure(read_timeout_seconds="0.3")
    receiver.script("/slow", Step(200, delay=2))

    # When delivering
    started = time.monotonic()
    outcome = transport.send(make_notification(receiver.url("/slow")), 1)

    # Then the attempt is a retryable TIMEOUT without a status, well before the endpoint answers
    assert outcome.category is Category.TIMEOUT
    assert outcome.retryEligible is True
    assert outcome.statusCode is None
    assert outcome.httpResponseReceivedAt is None
    assert "within 0.3 s" in outcome.errorDetails
    assert time.monotonic() - started < 1.8


def test_slow_drip_body_is_cut_at_the_total_time_limit(receiver, configure):
    # Given a body dripped a byte every 50 ms (each read is fast, the whole is not)
    configure(connect_timeout_seconds="0.3", read_timeout_seconds="0.3")
    receiver.script("/drip", Step(500, body="x" * 400, drip=0.05))

    started = time.monotonic()
    outcome = transport.send(make_notification(receiver.url("/drip")), 1)

    # Then reading stops at connect + read timeout instead of 20 s, and the status still counts
    assert outcome.statusCode == 500
    assert outcome.category is Category.SERVER_ERROR
    assert "time limit" in outcome.errorDetails
    assert time.monotonic() - started < 5


def test_connection_refused_is_a_retryable_connection_error(dead_port):
    outcome = transport.send(make_notification(f"http://127.0.0.1:{dead_port}/hook"), 1)

    assert outcome.category is Category.CONNECTION_ERROR
    assert outcome.retryEligible is True
    assert outcome.errorDetails == f"connection refused (127.0.0.1:{dead_port})"


def test_error_details_never_echo_credentials_or_query_tokens(dead_port):
    # Given a URL carrying user info and a token
    url = f"http://alice:hunter2@127.0.0.1:{dead_port}/hook?token=tok-secret-123"

    outcome = transport.send(make_notification(url), 1)

    assert "hunter2" not in outcome.model_dump_json()
    assert "tok-secret-123" not in outcome.model_dump_json()


def test_invalid_header_value_is_permanent_and_not_echoed(receiver):
    notification = make_notification(
        receiver.url("/ok"),
        target={"url": receiver.url("/ok"), "headers": {"Authorization": "Bearer s3cr3t\r\nX-Injected: 1"}},
    )

    outcome = transport.send(notification, 1)

    assert outcome.category is Category.CONNECTION_ERROR
    assert outcome.retryEligible is False
    assert "s3cr3t" not in outcome.model_dump_json()
    assert receiver.requests == []


def test_reset_mid_response_is_a_retryable_connection_error(receiver):
    # Given an endpoint that sends half a status line and then aborts with RST
    receiver.script("/reset", [Step(reset=True), Step(200)])

    outcome = transport.send(make_notification(receiver.url("/reset")), 1)

    assert outcome.category is Category.CONNECTION_ERROR
    assert outcome.retryEligible is True
    assert outcome.statusCode is None
    assert outcome.errorDetails.split(" (")[0] in {
        "connection reset by peer",
        "connection closed before a complete response",
    }
    # And the next attempt over a fresh connection works
    assert transport.send(make_notification(receiver.url("/reset")), 2).success


def test_oversized_body_is_capped(receiver, configure):
    # Given a 2 KiB cap and a 5 MB error body
    configure(max_response_bytes="2048")
    receiver.script("/huge", Step(500, huge=5_000_000))

    outcome = transport.send(make_notification(receiver.url("/huge")), 1)

    assert outcome.statusCode == 500
    assert outcome.responseBodyExcerpt == "x" * 1024
    assert "response body larger than 2048 bytes" in outcome.errorDetails


def test_oversized_body_on_success_is_still_a_success(receiver, configure):
    configure(max_response_bytes="2048")
    receiver.script("/huge", Step(200, huge=1_000_000))

    outcome = transport.send(make_notification(receiver.url("/huge")), 1)

    assert outcome.success is True
    assert outcome.errorDetails is None


def test_read_capped_reads_no_more_than_cap_plus_one(receiver):
    # Given a 1 MB body
    receiver.script("/huge", Step(200, huge=1_000_000))
    response = transport.SESSION.post(receiver.url("/huge"), data=b"{}", stream=True, timeout=5)

    # When read with a 4096-byte cap
    read = transport.read_capped(response, 4096, time.monotonic() + 5)

    # Then 4096 bytes are kept, the body is marked truncated, and the response is closed
    assert len(read.data) == 4096
    assert read.truncated is True
    assert response.raw.closed


def test_gzip_error_body_is_decoded_for_the_excerpt(receiver):
    receiver.script(
        "/gz", Step(502, body=gzip.compress(b'{"error":"upstream down"}'), headers={"Content-Encoding": "gzip"})
    )

    outcome = transport.send(make_notification(receiver.url("/gz")), 1)

    assert outcome.responseBodyExcerpt == '{"error":"upstream down"}'


def test_private_target_is_blocked_before_any_connection(receiver, configure, connects):
    # Given the production policy (no loopback targets)
    configure(allow_loopback_targets="false")

    # When delivering to the loopback receiver
    outcome = transport.send(make_notification(receiver.url("/ok")), 1)

    # Then no connection is opened and the failure is permanent
    assert outcome.category is Category.CONNECTION_ERROR
    assert outcome.retryEligible is False
    assert outcome.errorDetails == "target address 127.0.0.1 is loopback (blocked by SSRF policy)"
    assert connects == []
    assert receiver.requests == []


def test_metadata_endpoint_is_blocked_before_any_connection(configure, connects):
    outcome = transport.send(make_notification("http://169.254.169.254/latest/meta-data/iam/"), 1)

    assert outcome.retryEligible is False
    assert (
        outcome.errorDetails == "target address 169.254.169.254 is a cloud metadata endpoint (blocked by SSRF policy)"
    )
    assert connects == []


def test_metadata_name_is_blocked_by_name(configure, connects):
    outcome = transport.send(make_notification("http://metadata.google.internal/computeMetadata/v1/"), 1)

    assert outcome.retryEligible is False
    assert outcome.errorDetails == (
        "target host 'metadata.google.internal' is a cloud metadata name (blocked by SSRF policy)"
    )
    assert connects == []


def test_loopback_setting_delivers_to_loopback_but_not_to_other_private_targets(receiver, configure, connects):
    # Given the local policy: loopback receivers allowed, SSRF protection otherwise on
    configure(allow_loopback_targets="true", allow_private_targets="false")

    # Then the loopback receiver gets the request, by address and by localhost name
    assert transport.send(make_notification(receiver.url("/ok")), 1).success
    assert transport.send(make_notification(f"http://localhost:{receiver.port}/ok"), 2).success
    assert len(receiver.requests_for("/ok")) == 2

    # And private, link-local and metadata targets are still refused without a connection
    for url in ("http://10.0.0.1/x", "http://169.254.169.254/x", "http://[fe80::1]/x", "http://0.0.0.0/x"):
        outcome = transport.send(make_notification(url), 3)
        assert outcome.retryEligible is False
        assert "blocked by SSRF policy" in outcome.errorDetails
    assert all(ipaddress.ip_address(address.split("%")[0]).is_loopback for address in connects)


def test_allow_listed_host_may_be_private(receiver, configure):
    # Given the policy on, with localhost allow-listed by the operator
    configure(allow_loopback_targets="false", allowed_target_hosts="localhost")

    outcome = transport.send(make_notification(f"http://localhost:{receiver.port}/ok"), 1)

    assert outcome.success is True
    assert len(receiver.requests_for("/ok")) == 1


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_rebinding_never_reaches_the_second_address(scheme, configure, rebinding_dns, connects, listener):
    # Given the production policy and a name that resolves public first, then to a listening loopback socket
    configure(allow_loopback_targets="false")
    port = listener.getsockname()[1]

    # When delivering to it
    outcome = transport.send(make_notification(f"{scheme}://rebind.example:{port}/hook"), 1)

    # Then the name was resolved once, the connection went only to the vetted public address
    # (refused here, as nothing may leave the machine), and the loopback socket never saw a connection
    assert rebinding_dns == ["rebind.example"]
    assert connects == ["93.184.216.34"]
    assert pending_connections(listener) == 0
    assert outcome.category is Category.CONNECTION_ERROR
    assert outcome.errorDetails == f"connection refused (rebind.example:{port})"


def test_pinned_connection_keeps_the_name_in_the_host_header(receiver, configure, monkeypatch, connects):
    # Given a name that resolves (injected) to the loopback receiver, allowed by the local policy
    configure(allow_loopback_targets="true")
    real_getaddrinfo = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        if host == "hooks.test.localhost":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)

    # When delivering
    outcome = transport.send(make_notification(f"http://hooks.test.localhost:{receiver.port}/ok"), 1)

    # Then the connection went to the vetted address, and the request still names the host
    assert outcome.success
    assert connects == ["127.0.0.1"]
    (request,) = receiver.requests_for("/ok")
    assert request.headers["host"] == f"hooks.test.localhost:{receiver.port}"


def test_dns_failure_is_a_retryable_connection_error(configure, monkeypatch):
    # Given a resolver failure (injected: the suite never sends DNS queries off the machine)
    def failing_getaddrinfo(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", failing_getaddrinfo)

    outcome = transport.send(make_notification("https://hooks.nowhere.example/x"), 1)

    assert outcome.category is Category.CONNECTION_ERROR
    assert outcome.retryEligible is True
    assert outcome.errorDetails == "DNS resolution failed for hooks.nowhere.example"


def test_disallowed_scheme_is_refused(receiver, configure, connects):
    configure(allowed_schemes="https")

    outcome = transport.send(make_notification(receiver.url("/ok")), 1)

    assert outcome.retryEligible is False
    assert outcome.errorDetails == "target scheme 'http' is not allowed"
    assert connects == []


def test_unparseable_port_is_a_permanent_failure():
    outcome = transport.send(make_notification("http://127.0.0.1:99999/x"), 1)

    assert outcome.category is Category.CONNECTION_ERROR
    assert outcome.retryEligible is False
    assert outcome.errorDetails == "target URL cannot be parsed"


@pytest.fixture
def tls_receiver(tmp_path):
    """A receiver serving HTTPS with a self-signed certificate for 127.0.0.1 (not trusted by the sender)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    with WebhookReceiver(ssl_context=context) as rx:
        yield rx


def test_tls_certificates_are_verified(tls_receiver):
    # Given an HTTPS endpoint whose certificate no public CA signed
    # When delivering
    outcome = transport.send(make_notification(tls_receiver.url("/ok")), 1)

    # Then the handshake is refused and nothing is sent
    assert outcome.category is Category.CONNECTION_ERROR
    assert outcome.retryEligible is True
    assert outcome.errorDetails.startswith("TLS certificate verification failed")
    assert tls_receiver.requests == []


@pytest.fixture
def named_tls_receiver(tmp_path, monkeypatch):
    """An HTTPS receiver whose certificate names only ``hooks.test.localhost``, signed by a CA the sender trusts,
    and a resolver mapping ``*.test.localhost`` to it; records the SNI names it is offered."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)

    def certificate(subject, issuer, public_key, signing_key, *, ca, names=()):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        return builder.sign(signing_key, hashes.SHA256())

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate("Notiflow test CA", "Notiflow test CA", ca_key.public_key(), ca_key, ca=True)
    leaf = certificate(
        "hooks.test.localhost", "Notiflow test CA", leaf_key.public_key(), ca_key, ca=False,
        names=("hooks.test.localhost",),
    )  # fmt: skip
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    monkeypatch.setattr(requests_adapters, "DEFAULT_CA_BUNDLE_PATH", str(ca_file))
    real_getaddrinfo = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        if str(host).endswith(".test.localhost"):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    offered = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    context.sni_callback = lambda sock, name, ctx: offered.append(name)
    with WebhookReceiver(ssl_context=context) as rx:
        rx.sni_offered = offered
        yield rx


def test_pinned_tls_connection_verifies_the_certificate_for_the_name(named_tls_receiver, configure, connects):
    # Given the local policy and an HTTPS endpoint reached by name, connected to by its vetted address
    configure(allow_loopback_targets="true")
    port = named_tls_receiver.port

    # When delivering to the name on the certificate
    outcome = transport.send(make_notification(f"https://hooks.test.localhost:{port}/ok"), 1)

    # Then TLS used the name for SNI and verification although the socket went to 127.0.0.1
    assert outcome.success, outcome.errorDetails
    assert connects == ["127.0.0.1"]
    assert named_tls_receiver.sni_offered == ["hooks.test.localhost"]
    assert named_tls_receiver.requests_for("/ok")[0].headers["host"] == f"hooks.test.localhost:{port}"

    # And a name the certificate does not carry fails verification, whatever address it pins
    other = transport.send(make_notification(f"https://other.test.localhost:{port}/ok"), 2)
    assert other.category is Category.CONNECTION_ERROR
    assert other.errorDetails.startswith("TLS certificate verification failed")
    assert len(named_tls_receiver.requests_for("/ok")) == 1
