import socket
import time

import pytest

from lib import errors
from lib.http import NO_RETRY, HttpClient, RateLimiter, RetryPolicy, redact

SECRET = "S3CR3T-KEY+42/x"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- RetryPolicy ------------------------------------------------------------------------------------

@pytest.mark.parametrize("retry_number", range(8))
def test_retry_delay_is_bounded_by_exponential_ceiling_and_max_backoff(retry_number):
    policy = RetryPolicy(attempts=10, backoff=0.5, max_backoff=8.0)
    ceiling = min(8.0, 0.5 * 2 ** retry_number)
    error = errors.NetworkError("down")
    delays = [policy.delay(retry_number, error) for _ in range(200)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(set(delays)) > 1  # jittered


def test_retry_delay_honours_retry_after_up_to_max_backoff():
    policy = RetryPolicy(backoff=0.01, max_backoff=5.0)
    assert policy.delay(0, errors.RateLimitedError("slow down", retry_after=2.5)) == 2.5
    assert policy.delay(0, errors.RateLimitedError("slow down", retry_after=60.0)) == 5.0
    # a retry_after shorter than the backoff does not shorten it
    assert 0.5 <= RetryPolicy(backoff=1.0).delay(0, errors.RateLimitedError("x", retry_after=0.1)) <= 1.0


def test_retry_policy_rejects_nonsense():
    assert NO_RETRY.attempts == 1
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(backoff=-1.0)


# -- redaction --------------------------------------------------------------------------------------

def test_redact_replaces_every_occurrence_of_every_secret():
    text = "key=abc123 and again abc123; other=zz9"
    assert redact(text, ["abc123", "zz9"]) == "key=*** and again ***; other=***"


def test_redact_ignores_empty_and_too_short_secrets():
    assert redact("a-b-c", [None, "", "b"]) == "a-b-c"


def test_redact_catches_url_encoded_spellings():
    url = "http://h/query?apikey=S3CR3T-KEY%2B42%2Fx&x=1 or S3CR3T-KEY+42/x"
    assert redact(url, [SECRET]) == "http://h/query?apikey=***&x=1 or ***"


# -- RateLimiter ------------------------------------------------------------------------------------

class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_rate_limiter_spaces_calls_with_a_fake_clock():
    clock = FakeClock()
    limiter = RateLimiter(1.0, clock=clock, sleep=clock.sleep)
    assert [limiter.wait() for _ in range(3)] == [0.0, 1.0, 1.0]
    assert clock.sleeps == [1.0, 1.0]
    clock.now += 0.25  # some work between calls counts towards the interval
    assert limiter.wait() == pytest.approx(0.75)
    clock.now += 5.0  # after a long pause, no wait, and no credit saved up
    assert [limiter.wait(), limiter.wait()] == [0.0, 1.0]


def test_rate_limiter_with_zero_interval_never_sleeps():
    clock = FakeClock()
    limiter = RateLimiter(0, clock=clock, sleep=clock.sleep)
    assert [limiter.wait() for _ in range(5)] == [0.0] * 5 and clock.sleeps == []


def test_rate_limiter_in_real_time():
    limiter = RateLimiter(0.1)
    started = time.monotonic()
    for _ in range(3):
        limiter.wait()
    assert time.monotonic() - started >= 0.2


# -- HttpClient -------------------------------------------------------------------------------------

@pytest.mark.parametrize("base_url", ["www.alphavantage.co", "ftp://example.com", "", "127.0.0.1:8000"])
def test_base_url_must_be_http(base_url):
    with pytest.raises(errors.ConfigurationError, match="must start with http:// or https://") as info:
        HttpClient("test", base_url)
    assert info.value.source == "test"


def test_trailing_slash_is_dropped():
    assert HttpClient("test", "https://example.com/api/").base_url == "https://example.com/api"


def test_network_error_does_not_leak_the_api_key():
    client = HttpClient("test", f"http://127.0.0.1:{closed_port()}", retry=NO_RETRY, secrets=[SECRET],
                        timeout=2.0)
    with pytest.raises(errors.NetworkError) as info:
        client.get("/query", {"function": "TIME_SERIES_DAILY", "apikey": SECRET}, check=lambda r: r, symbol="IBM")
    message = str(info.value)
    assert type(info.value) is errors.NetworkError and info.value.retryable
    assert message.startswith("test: connection failed: ConnectionError")
    assert "apikey=***" in message  # the URL is quoted, but not the key
    assert SECRET not in message and "S3CR3T" not in message
    assert info.value.symbol == "IBM"


def test_network_errors_are_retried_attempts_times():
    sleeps = []
    client = HttpClient("test", f"http://127.0.0.1:{closed_port()}", retry=RetryPolicy(attempts=3, backoff=0.01),
                        sleep=sleeps.append)
    with pytest.raises(errors.NetworkError):
        client.get("/x", check=lambda r: r)
    assert len(sleeps) == 2 and all(0 < s <= 0.02 for s in sleeps)
