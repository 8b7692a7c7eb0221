"""All logic of halo-immy: plain typed Python, no azure.functions imports."""
