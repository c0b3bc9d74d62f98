"""SofaCover's Pulumi CrossGuard policy pack (see policy/pack.py and policy/rules.py)."""
