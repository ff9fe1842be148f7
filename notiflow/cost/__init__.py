"""What a million notifications cost: usage measured from real runs, priced from infrastructure/prices.json."""
