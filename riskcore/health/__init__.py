"""Each venue's own health rule, computed from decoded balances, prices and parameters."""
