"""One module per upstream source, each defining its tasks: AlphaVantage stocks, crypto markets (a live
exchange through ccxt, or Cryptowatch), historical coin CSV files, and the bundled sample data."""
