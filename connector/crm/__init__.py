"""The CRM boundary: types.py holds the protocol every CRM client implements and its values."""
