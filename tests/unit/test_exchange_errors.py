"""How ccxt's exceptions map onto lib.errors (retryable or permanent), without any network."""
import ccxt
import pytest

from lib import errors
from lib.exchange import ExchangeClient


@pytest.fixture(scope="module")
def client():
    return ExchangeClient("kraken", environ={})


@pytest.mark.parametrize("raised, expected", [
    (ccxt.BadSymbol("kraken does not have market symbol DOGE/USD"), errors.NotFoundError),
    (ccxt.RateLimitExceeded("kraken {\"error\":[\"EAPI:Rate limit exceeded\"]}"), errors.RateLimitedError),
    (ccxt.DDoSProtection("binance 418 I'm a teapot"), errors.RateLimitedError),
    (ccxt.RequestTimeout("kraken GET http://x/0/public/OHLC"), errors.RequestTimeout),
    (ccxt.ExchangeNotAvailable("kraken {\"error\":[\"EService:Unavailable\"]}"), errors.ServerError),
    (ccxt.OnMaintenance("kraken maintenance"), errors.ServerError),
    (ccxt.NetworkError("kraken GET http://x connection refused"), errors.NetworkError),
    (ccxt.InvalidNonce("kraken nonce"), errors.NetworkError),
    (ccxt.AuthenticationError("kraken EAPI:Invalid key"), errors.AuthenticationError),
    (ccxt.BadResponse("binance unexpected response"), errors.MalformedPayloadError),
    (ccxt.NullResponse("binance empty response"), errors.MalformedPayloadError),
    (ccxt.BadRequest("kraken EGeneral:Invalid arguments"), errors.BadRequestError),
    (ccxt.ExchangeError("kraken something else"), errors.PermanentError),
    (ccxt.ExchangeError('kraken {"error":["EQuery:Unknown asset pair"],"result":null}'), errors.NotFoundError),
    (ccxt.NotSupported("kraken fetchSomething() is not supported"), errors.PermanentError),
])
def test_ccxt_exceptions_map_onto_lib_errors(client, raised, expected):
    mapped = client.map_error(raised, "kraken:btcusd")
    assert type(mapped) is expected
    assert mapped.retryable == issubclass(expected, errors.RetryableError)
    assert mapped.source == "exchange" and mapped.symbol == "kraken:btcusd"
    assert str(mapped).startswith("kraken: ") and not str(mapped).startswith("kraken: kraken")


@pytest.mark.parametrize("status, expected", [(400, errors.BadRequestError), (403, errors.BadRequestError),
                                              (404, errors.BadRequestError), (451, errors.BadRequestError),
                                              (503, errors.ServerError), (None, errors.ServerError)])
def test_exchange_not_available_is_permanent_when_it_came_with_a_4xx(client, status, expected):
    """ccxt files 400/403/404/451 under ExchangeNotAvailable; retrying those cannot help."""
    client.last_status = status
    assert type(client.map_error(ccxt.ExchangeNotAvailable(f"kraken GET http://x {status}"))) is expected


def test_long_messages_are_shortened(client):
    assert len(str(client.map_error(ccxt.ExchangeError("kraken " + "x" * 1000)))) < 320
