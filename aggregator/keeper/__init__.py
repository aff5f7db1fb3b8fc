"""The keeper: turns rebalance plans into transactions, simulates them, signs and sends them."""
